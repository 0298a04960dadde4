// User-facing errors. Anything thrown as FhecError is printed by the CLI as one line
// (`fhec: FILE: node NAME: message`) with exit code 2, never as a stack trace.

export interface ErrorWhere {
  /** The file being read (model, plan, tensor JSON). */
  file?: string;
  /** The graph node (name, and op in parentheses). */
  node?: string;
  /** A field, input name or attribute. */
  field?: string;
}

export class FhecError extends Error {
  readonly where: ErrorWhere;
  constructor(message: string, where: ErrorWhere = {}) {
    super(message);
    this.name = 'FhecError';
    this.where = where;
  }

  /** One line: file, node, field, message. */
  format(): string {
    const parts: string[] = [];
    if (this.where.file) parts.push(this.where.file);
    if (this.where.node) parts.push(`node ${this.where.node}`);
    if (this.where.field) parts.push(this.where.field);
    parts.push(this.message);
    return parts.join(': ');
  }

  /** Same error with the file filled in (if not already). */
  inFile(file: string): FhecError {
    if (this.where.file) return this;
    const e = new FhecError(this.message, { ...this.where, file });
    e.stack = this.stack;
    return e;
  }
}

export function nodeLabel(node: { name: string; op: string; domain: string }): string {
  const op = node.domain ? `${node.domain}::${node.op}` : node.op;
  return `${node.name || '<unnamed>'} (${op})`;
}
