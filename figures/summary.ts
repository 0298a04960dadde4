// vitest globalSetup of `npm run figures`: after every figures file ran, gathers figures/out/*.json into
// figures/out/figures.json (one entry per README row) and prints which README figures hold.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OUT, type FigureFile } from './record.js';

export default function setup(): () => void {
  const started = Date.now();
  return () => {
    if (!fs.existsSync(OUT)) return;
    const files = fs.readdirSync(OUT).filter((f) => f.endsWith('.json') && f !== 'figures.json').sort();
    const all = files.map((f) => JSON.parse(fs.readFileSync(path.join(OUT, f), 'utf8')) as FigureFile);
    const fresh = all.filter((f) => Date.parse(f.date) >= started);
    fs.writeFileSync(path.join(OUT, 'figures.json'), JSON.stringify({ date: new Date().toISOString(), rows: all }, null, 2) + '\n');
    const stale = all.flatMap((f) => f.figures.filter((x) => !x.holds).map((x) => `${f.name}: ${x.what}`));
    console.log(
      `\nfigures/out/figures.json: ${all.length} README rows (${fresh.length} measured in this run), ` +
        `${all.reduce((s, f) => s + f.figures.length, 0)} figures, ${stale.length} not holding${stale.length ? `: ${stale.join('; ')}` : ''}`,
    );
  };
}
