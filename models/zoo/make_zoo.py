#!/usr/bin/python3
"""Train and export the fhec model zoo: small byte-level Llama-3-architecture models of varied shapes.

Runs with Debian 12's /usr/bin/python3 + python3-torch (1.13.1) + python3-onnx (1.12.0), like
../shared/models/make_models.py (model A), from which the model, corpus and evaluation code is copied
(adapted: tied embeddings, and an optional fused q|k|v and gate|up form of the same weights).

    /usr/bin/python3 make_zoo.py corpus --work W              # the same corpus split as model A (checked)
    /usr/bin/python3 make_zoo.py train Z1 --work W --out .    # Z1.pt + Z1.training.json
    /usr/bin/python3 make_zoo.py weights Z1 --out .           # or: Z1.pt back out of Z1_nocache_opset17.onnx (exact)
    /usr/bin/python3 make_zoo.py export Z1 --work W --out .   # Z1_*.onnx + W/Z1_*.cases.json (torch outputs)
    node make_refs.mjs W .                                    # ORT run, torch-vs-ORT check, *.ref.json
    /usr/bin/python3 make_zoo.py table --out .                # the README tables

Every model: vocab 256 (bytes), training context (max_position_embeddings) 128, RMSNorm eps 1e-5,
RoPE theta 500000, head_dim = hidden_size / num_attention_heads, no bias, SwiGLU MLP.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FORTUNE_DIR = '/usr/share/games/fortunes'
EXCLUDE = {'art', 'ascii-art', 'ethnic', 'men-women', 'drugs', 'translate-me'}
SPLIT_SEED = 1234
VAL_FRACTION = 0.05


def llama(hidden, layers, heads, kv_heads, ffn, tied, seed):
    return dict(vocab_size=256, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, intermediate_size=ffn, max_position_embeddings=128,
                rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=tied), seed


# name -> (config, training seed). Shapes chosen to span what a Llama-3-family exporter can produce:
# hidden sizes that are not powers of two, MHA and GQA groups 1..4, head dims 8..64 (12 too),
# 1..4 layers, FFN sizes that are not multiples of 64, tied embeddings.
ZOO = {
    'Z1': llama(48, 1, 4, 4, 136, True, 11),     # MHA, head 12, tied
    'Z2': llama(96, 3, 6, 2, 232, False, 12),    # GQA 3 (3 query heads per kv head), head 16
    'Z3': llama(64, 2, 2, 1, 200, False, 13),    # GQA 2 with a single kv head, head 32
    'Z4': llama(80, 4, 10, 5, 216, False, 14),   # GQA 2, head 8, 4 layers
    'Z5': llama(128, 1, 2, 2, 344, True, 15),    # MHA, head 64, tied
    'Z6': llama(96, 2, 8, 2, 264, False, 16),    # GQA 4, head 12
}
CONFIGS = {k: v[0] for k, v in ZOO.items()}


# ----------------------------------------------------------------------------- model

class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, dim, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos()
        sin = emb.sin()
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaAttention(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.fused = fused
        self.hidden_size = cfg['hidden_size']
        self.num_heads = cfg['num_attention_heads']
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = cfg['num_key_value_heads']
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.qkv_sizes = [self.num_heads * self.head_dim] + [self.num_key_value_heads * self.head_dim] * 2
        if fused:  # one projection against the concatenated q|k|v weights, then an unequal split (Phi-3 style)
            self.qkv_proj = nn.Linear(self.hidden_size, sum(self.qkv_sizes), bias=False)
        else:
            self.q_proj = nn.Linear(self.hidden_size, self.qkv_sizes[0], bias=False)
            self.k_proj = nn.Linear(self.hidden_size, self.qkv_sizes[1], bias=False)
            self.v_proj = nn.Linear(self.hidden_size, self.qkv_sizes[2], bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_value=None):
        bsz, q_len, _ = hidden_states.size()
        if self.fused:
            query_states, key_states, value_states = torch.split(self.qkv_proj(hidden_states), self.qkv_sizes, dim=-1)
        else:
            query_states = self.q_proj(hidden_states)
            key_states = self.k_proj(hidden_states)
            value_states = self.v_proj(hidden_states)
        query_states = query_states.view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        key_states = key_states.view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        value_states = value_states.view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)

        if past_key_value is not None:  # cache holds post-RoPE keys, kv-head layout (before repeat_kv)
            key_states = torch.cat([past_key_value[0], key_states], dim=2)
            value_states = torch.cat([past_key_value[1], value_states], dim=2)
        present = (key_states, value_states)

        key_states = repeat_kv(key_states, self.num_key_value_groups)
        value_states = repeat_kv(value_states, self.num_key_value_groups)

        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) / math.sqrt(self.head_dim)
        attn_weights = attn_weights + attention_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(bsz, q_len, self.hidden_size)
        return self.o_proj(attn_output), present


class LlamaMLP(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        h, i = cfg['hidden_size'], cfg['intermediate_size']
        self.fused = fused
        if fused:  # gate|up in one projection, then a split in halves (Phi-3 style)
            self.gate_up_proj = nn.Linear(h, 2 * i, bias=False)
        else:
            self.gate_proj = nn.Linear(h, i, bias=False)
            self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        if self.fused:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(F.silu(gate) * up)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, fused)
        self.mlp = LlamaMLP(cfg, fused)
        self.input_layernorm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.post_attention_layernorm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_value=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, present = self.self_attn(hidden_states, position_embeddings, attention_mask, past_key_value)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states, present


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], cfg['hidden_size'])
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, fused) for _ in range(cfg['num_hidden_layers'])])
        self.norm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        head_dim = cfg['hidden_size'] // cfg['num_attention_heads']
        self.rotary_emb = LlamaRotaryEmbedding(head_dim, cfg['rope_theta'])
        self.lm_head = nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        self.apply(self._init_weights)
        if cfg['tie_word_embeddings']:  # as Llama 3.2 1B/3B: lm_head shares the embedding matrix
            self.lm_head.weight = self.embed_tokens.weight

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)

    def _causal_mask(self, attention_mask, bsz, seq_len, past_len, cache_position, dtype):
        # LlamaModel._update_causal_mask (eager attention, dynamic cache)
        min_dtype = torch.finfo(dtype).min
        target_length = past_len + seq_len
        causal_mask = torch.full((seq_len, target_length), fill_value=min_dtype, dtype=dtype)
        causal_mask = torch.triu(causal_mask, diagonal=1)
        causal_mask = causal_mask * (torch.arange(target_length) > cache_position.reshape(-1, 1))
        causal_mask = causal_mask[None, None, :, :].expand(bsz, 1, -1, -1)
        if attention_mask is not None:
            padding_mask = (causal_mask + attention_mask[:, None, None, :].to(dtype)) == 0
            causal_mask = causal_mask.masked_fill(padding_mask, min_dtype)
        return causal_mask

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None):
        bsz, seq_len = input_ids.shape
        inputs_embeds = self.embed_tokens(input_ids)
        past_len = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        cache_position = torch.arange(past_len, past_len + seq_len)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        mask = self._causal_mask(attention_mask, bsz, seq_len, past_len, cache_position, inputs_embeds.dtype)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            past = past_key_values[i] if past_key_values is not None else None
            hidden_states, present = layer(hidden_states, position_embeddings, mask, past)
            presents.append(present)
        hidden_states = self.norm(hidden_states)
        logits = self.lm_head(hidden_states).float()
        return logits, presents


class NoCacheExport(nn.Module):
    """input_ids [1, seq] -> logits [1, seq, 256]"""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids)[0]


class KVCacheExport(nn.Module):
    """Optimum-style decoder-with-past signature:
    (input_ids, attention_mask, position_ids, past_key_values.{i}.key, past_key_values.{i}.value, ...)
    -> (logits, present.{i}.key, present.{i}.value, ...)"""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        pkv = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids, pkv)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


# ----------------------------------------------------------------------------- corpus

def load_fortunes():
    fortunes = []
    for name in sorted(os.listdir(FORTUNE_DIR)):
        path = os.path.join(FORTUNE_DIR, name)
        if name.endswith('.dat') or name.endswith('.u8') or name in EXCLUDE or os.path.islink(path):
            continue
        cur = []
        with open(path, 'rb') as f:
            for line in f.read().split(b'\n'):
                if line == b'%':
                    if cur:
                        fortunes.append(b'\n'.join(cur).strip(b'\n'))
                    cur = []
                else:
                    cur.append(line)
        if cur and b'\n'.join(cur).strip():
            fortunes.append(b'\n'.join(cur).strip(b'\n'))
    return [f for f in fortunes if f.strip()]


def cmd_corpus(args):
    fortunes = load_fortunes()
    random.Random(SPLIT_SEED).shuffle(fortunes)
    total = sum(len(f) + 2 for f in fortunes)
    val, train, acc = [], [], 0
    for f in fortunes:
        if acc < VAL_FRACTION * total:
            val.append(f)
            acc += len(f) + 2
        else:
            train.append(f)
    sep = b'\n\n'
    train_b = sep.join(train) + sep
    val_b = sep.join(val) + sep
    os.makedirs(args.work, exist_ok=True)
    open(os.path.join(args.work, 'train.txt'), 'wb').write(train_b)
    open(os.path.join(args.work, 'validation.txt'), 'wb').write(val_b)
    # calibration.txt: first ~4 KB of the validation split, cut at a fortune boundary
    cal, n = [], 0
    for f in val:
        if n + len(f) + 2 > 4096:
            break
        cal.append(f)
        n += len(f) + 2
    open(os.path.join(args.work, 'calibration.txt'), 'wb').write(sep.join(cal) + sep)
    info = dict(fortunes=len(fortunes), train_fortunes=len(train), val_fortunes=len(val),
                train_bytes=len(train_b), val_bytes=len(val_b), calibration_bytes=n,
                files=sorted(x for x in os.listdir(FORTUNE_DIR) if not x.endswith(('.dat', '.u8')) and x not in EXCLUDE))
    json.dump(info, open(os.path.join(args.work, 'corpus.json'), 'w'), indent=1)
    print(json.dumps(info))


def load_split(work, name):
    return torch.tensor(list(open(os.path.join(work, name), 'rb').read()), dtype=torch.long)


# ----------------------------------------------------------------------------- training / eval

@torch.no_grad()
def evaluate(model, data, ctx, max_windows=None, bs=64):
    """Non-overlapping windows of ctx+1 bytes; every window predicts ctx targets with
    0..ctx-1 bytes of left context. Returns mean CE (nats/byte), perplexity, top-1 accuracy."""
    model.eval()
    n = (len(data) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    starts = torch.arange(n) * ctx
    tot_loss, tot_correct, tot = 0.0, 0, 0
    for b in range(0, n, bs):
        s = starts[b:b + bs]
        x = torch.stack([data[i:i + ctx] for i in s])
        y = torch.stack([data[i + 1:i + ctx + 1] for i in s])
        logits, _ = model(x)
        tot_loss += F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction='sum').item()
        tot_correct += (logits.argmax(-1) == y).sum().item()
        tot += y.numel()
    model.train()
    loss = tot_loss / tot
    return dict(loss=loss, ppl=math.exp(loss), bits_per_byte=loss / math.log(2), top1=tot_correct / tot, targets=tot)


@torch.no_grad()
def generate(model, prompt, n, greedy=True, temperature=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = list(prompt.encode('utf-8'))
    for _ in range(n):
        x = torch.tensor([ids[-model.cfg['max_position_embeddings']:]])
        logits, _ = model(x)
        last = logits[0, -1]
        if greedy:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(F.softmax(last / temperature, -1), 1, generator=g))
        ids.append(nxt)
    return bytes(ids).decode('utf-8', errors='replace')


def cmd_train(args):
    torch.set_num_threads(args.threads)
    cfg, seed = ZOO[args.model]
    seed = args.seed if args.seed is not None else seed
    torch.manual_seed(seed)
    ctx = cfg['max_position_embeddings']
    train = load_split(args.work, 'train.txt')
    val = load_split(args.work, 'validation.txt')
    model = LlamaForCausalLM(cfg)
    nparams = sum(p.numel() for p in model.parameters())  # a tied matrix counts once
    print(f'model {args.model} params {nparams} train bytes {len(train)} val bytes {len(val)}', flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed)

    def get_batch():
        ix = torch.randint(0, len(train) - ctx - 1, (args.batch,), generator=g)
        x = torch.stack([train[i:i + ctx] for i in ix])
        y = torch.stack([train[i + 1:i + ctx + 1] for i in ix])
        return x, y

    # schedule: over --steps steps, or over --minutes of wall time (the machine is shared, so a step
    # count estimated from an early timing can overrun by 3x); warm-up is always the first 50 steps
    warmup = 50
    budget = args.minutes * 60
    t0 = time.time()
    step = 0
    log = []
    while True:
        progress = step / args.steps if args.steps else (time.time() - t0) / budget
        if progress >= 1:
            break
        if step < warmup:
            lr = args.lr * (step + 1) / warmup
        else:
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for pg in opt.param_groups:
            pg['lr'] = lr
        x, y = get_batch()
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            ev = evaluate(model, val, ctx, max_windows=100)
            rec = dict(step=step, time_s=round(time.time() - t0, 1), lr=lr, train_batch_loss=loss.item(), val_loss_subset=ev['loss'])
            log.append(rec)
            print(json.dumps(rec), flush=True)
    train_time = time.time() - t0
    ev = evaluate(model, val, ctx, max_windows=100)
    log.append(dict(step=step, time_s=round(train_time, 1), lr=lr, train_batch_loss=loss.item(), val_loss_subset=ev['loss']))
    # final metrics: the whole validation split, and an equally sized slice of the training split
    ev_val = evaluate(model, val, ctx)
    ev_train = evaluate(model, train[: len(val)], ctx)
    samples = {
        'greedy': generate(model, 'The ', 200),
        'sampled_T0.8': generate(model, 'The ', 300, greedy=False, temperature=0.8, seed=1),
    }
    metrics = dict(model=args.model, config=cfg, params=nparams, steps=step, batch=args.batch, ctx=ctx, lr=args.lr,
                   warmup=warmup, schedule='by steps' if args.steps else f'by wall time ({args.minutes} min)', optimizer='AdamW betas (0.9, 0.95), weight decay 0.1 on matrices, grad clip 1.0, cosine to lr/10',
                   threads=args.threads, seed=seed, train_time_s=round(train_time, 1),
                   corpus='Debian fortunes, the split of ../shared/models (make_zoo.py corpus == make_models.py corpus)',
                   eval_note='non-overlapping 128-byte windows over the whole validation split; train row: an equally sized slice of the training split',
                   train=ev_train, validation=ev_val, samples=samples, log=log, torch=torch.__version__)
    os.makedirs(args.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.out, f'{args.model}.pt'))
    json.dump(metrics, open(os.path.join(args.out, f'{args.model}.training.json'), 'w'), indent=1)
    print(json.dumps({k: metrics[k] for k in ('train', 'validation', 'steps', 'train_time_s')}, indent=1))
    for k, v in samples.items():
        print(f'--- {k}\n{v}')


def fused_state_dict(sd, cfg):
    """The same weights for the fused form: q|k|v rows concatenated, gate|up rows concatenated."""
    out = {}
    for k, v in sd.items():
        if '.q_proj.' in k:
            p = k.replace('.q_proj.weight', '')
            out[p + '.qkv_proj.weight'] = torch.cat([sd[p + '.q_proj.weight'], sd[p + '.k_proj.weight'], sd[p + '.v_proj.weight']], 0)
        elif '.gate_proj.' in k:
            p = k.replace('.gate_proj.weight', '')
            out[p + '.gate_up_proj.weight'] = torch.cat([sd[p + '.gate_proj.weight'], sd[p + '.up_proj.weight']], 0)
        elif not any(s in k for s in ('.k_proj.', '.v_proj.', '.up_proj.')):
            out[k] = v
    return out


# ----------------------------------------------------------------------------- export + reference cases

def t2j(t):
    t = t.detach().contiguous()
    dtype = {torch.float32: 'float32', torch.int64: 'int64'}[t.dtype]
    return dict(dims=list(t.shape), dtype=dtype, data=t.reshape(-1).tolist())


def find_ascii_window(text, start, length):
    """first window of `length` bytes at/after `start` that is printable ASCII and starts a fortune or a line."""
    i = start
    while i + length <= len(text):
        if (i == 0 or text[i - 1] == 10) and text[i] not in b' \t\n' and all(32 <= c < 127 or c in (9, 10) for c in text[i:i + length]):
            return text[i:i + length]
        i += 1
    raise ValueError('no window')


def cmd_export(args):
    torch.set_num_threads(args.threads)
    import onnx
    cfg = CONFIGS[args.model]
    ref_model = LlamaForCausalLM(cfg)
    ref_model.load_state_dict(torch.load(os.path.join(args.out, f'{args.model}.pt')))
    ref_model.eval()
    fused_model = LlamaForCausalLM(cfg, fused=True)
    fused_model.load_state_dict(fused_state_dict(ref_model.state_dict(), cfg))
    fused_model.eval()
    L = cfg['num_hidden_layers']
    nkv = cfg['num_key_value_heads']
    hd = cfg['hidden_size'] // cfg['num_attention_heads']
    val = open(os.path.join(args.work, 'validation.txt'), 'rb').read()
    # prompts from validation text past calibration.txt and eval-dev.txt (the first ~10 KB), a different place per model
    off = 20000 + 4000 * (int(args.model[1:]) - 1)
    p16 = find_ascii_window(val, off, 16)
    p64 = find_ascii_window(val, off + 1500, 64)
    p12 = find_ascii_window(val, off + 3000, 12)
    gen = torch.Generator().manual_seed(7)

    def randtext(n):  # real validation bytes at a random offset (for agreement checks)
        i = int(torch.randint(0, len(val) - n, (1,), generator=gen))
        return torch.tensor([list(val[i:i + n])])

    kv_in_names = ['input_ids', 'attention_mask', 'position_ids']
    kv_out_names = ['logits']
    kv_axes = {'input_ids': {1: 'sequence_length'}, 'attention_mask': {1: 'total_sequence_length'},
               'position_ids': {1: 'sequence_length'}, 'logits': {1: 'sequence_length'}}
    for i in range(L):
        for kvn in ('key', 'value'):
            kv_in_names.append(f'past_key_values.{i}.{kvn}')
            kv_out_names.append(f'present.{i}.{kvn}')
            kv_axes[f'past_key_values.{i}.{kvn}'] = {2: 'past_sequence_length'}
            kv_axes[f'present.{i}.{kvn}'] = {2: 'total_sequence_length'}

    def kv_inputs(ids, past, attn=None, pos=None):
        P = past[0].shape[2]
        S = ids.shape[1]
        if attn is None:
            attn = torch.ones(1, P + S, dtype=torch.long)
        if pos is None:
            pos = torch.arange(P, P + S).unsqueeze(0)
        return [ids, attn, pos] + list(past)

    def empty_past(P=0):
        return [torch.zeros(1, nkv, P, hd) for _ in range(2 * L)]

    exported = []
    for variant in args.variants.split(','):
        kind, opset = variant.split('@')
        opset = int(opset)
        fused = kind.startswith('fused_')
        model = fused_model if fused else ref_model
        nocache = NoCacheExport(model).eval()
        kv = KVCacheExport(model).eval()

        def run_kv(inputs):
            with torch.no_grad():
                outs = kv(*inputs)
            return dict(zip(kv_in_names, inputs)), dict(zip(kv_out_names, outs))

        name = f'{args.model}_{kind}_opset{opset}'
        path = os.path.join(args.out, name + '.onnx')
        if kind.endswith('nocache'):
            dummy = (torch.tensor([list(b'Hello, world')]),)
            torch.onnx.export(nocache, dummy, path, input_names=['input_ids'], output_names=['logits'],
                              dynamic_axes={'input_ids': {1: 'sequence_length'}, 'logits': {1: 'sequence_length'}},
                              opset_version=opset, do_constant_folding=True)
        else:
            # trace with past 5 + seq 3 so no length is specialised
            g2 = torch.Generator().manual_seed(3)
            dummy_past = [torch.randn(1, nkv, 5, hd, generator=g2) for _ in range(2 * L)]
            dummy = tuple(kv_inputs(torch.tensor([list(b'abc')]), dummy_past))
            torch.onnx.export(kv, dummy, path, input_names=kv_in_names, output_names=kv_out_names,
                              dynamic_axes=kv_axes, opset_version=opset, do_constant_folding=True)
        m = onnx.load(path)
        m.producer_name = 'pytorch'
        m.doc_string = (f'fhec zoo model {args.model}{" (fused q|k|v and gate|up projections)" if fused else ""}: '
                        f'byte-level Llama-3-architecture LM trained on Debian fortunes; '
                        f'exported by torch.onnx.export (TorchScript) torch {torch.__version__}, opset {opset}; config {json.dumps(cfg)}')
        onnx.save(m, path)
        onnx.checker.check_model(onnx.load(path), full_check=True)
        print('exported + checked', path, os.path.getsize(path), flush=True)

        # ---- reference cases (inputs + torch outputs); ORT outputs are added by make_refs.mjs
        cases = []
        checks = []
        if kind.endswith('nocache'):
            for label, p in (('prompt16', p16), ('prompt64', p64)):
                ids = torch.tensor([list(p)])
                with torch.no_grad():
                    lg = nocache(ids)
                cases.append(dict(name=label, text=p.decode('ascii'), steps=[dict(inputs={'input_ids': t2j(ids)}, outputs={'logits': t2j(lg)})]))
            for n in (1, 2, 7, 33, 64, 100, 128):
                ids = randtext(n)
                with torch.no_grad():
                    lg = nocache(ids)
                checks.append(dict(name=f'random_valtext_len{n}', inputs={'input_ids': t2j(ids)}, outputs={'logits': t2j(lg)}))
        else:
            for label, p in (('prompt16', p16), ('prompt64', p64)):
                ids = torch.tensor([list(p)])
                i_, o_ = run_kv(kv_inputs(ids, empty_past()))
                cases.append(dict(name=label, text=p.decode('ascii'), steps=[dict(inputs={k: t2j(v) for k, v in i_.items()}, outputs={k: t2j(v) for k, v in o_.items()})]))
            # prefill 12 bytes, then 4 greedy single-byte decode steps fed with the present tensors
            steps = []
            ids = torch.tensor([list(p12)])
            past = empty_past()
            generated = []
            for s in range(5):
                inp = kv_inputs(ids, past)
                i_, o_ = run_kv(inp)
                steps.append(dict(inputs={k: t2j(v) for k, v in i_.items()}, outputs={k: t2j(v) for k, v in o_.items()}))
                nxt = int(o_['logits'][0, -1].argmax())
                generated.append(nxt)
                past = [o_[nm] for nm in kv_out_names[1:]]
                ids = torch.tensor([[nxt]])
            cases.append(dict(name='decode_prefill12_plus4', text=p12.decode('ascii'),
                              greedy_bytes=generated, greedy_text=bytes(generated).decode('utf-8', 'replace'), steps=steps))
            # agreement checks: random past lengths incl. 0, a left-padded mask, position offsets
            for P, S in ((0, 1), (0, 9), (1, 1), (5, 3), (20, 1), (31, 33), (63, 1), (100, 28), (127, 1)):
                ids = randtext(P + S)
                if P == 0:
                    pst = empty_past()
                else:
                    with torch.no_grad():
                        pst = list(kv(*kv_inputs(ids[:, :P], empty_past()))[1:])
                i_, o_ = run_kv(kv_inputs(ids[:, P:], pst))
                checks.append(dict(name=f'past{P}_seq{S}', inputs={k: t2j(v) for k, v in i_.items()}, outputs={k: t2j(v) for k, v in o_.items()}))
            # left padding: 3 pad tokens masked out, positions start at 0 after the pad (as HF generate does)
            ids = randtext(10)
            attn = torch.tensor([[0, 0, 0] + [1] * 7])
            pos = torch.tensor([[1, 1, 1] + list(range(7))])  # HF: cumsum(mask)-1, masked_fill(mask==0, 1)
            i_, o_ = run_kv(kv_inputs(ids, empty_past(), attn, pos))
            checks.append(dict(name='left_padded3_seq10', inputs={k: t2j(v) for k, v in i_.items()}, outputs={k: t2j(v) for k, v in o_.items()}))
            # consistency: kv-cache decode logits == no-cache full-sequence logits
            full = torch.tensor([list(p12) + generated[:-1]])
            with torch.no_grad():
                lg_full = nocache(full)[0, -4:]
            lg_steps = torch.stack([torch.tensor(st['outputs']['logits']['data']).view(-1, 256)[-1] for st in steps[1:]])
            lg_pref = torch.tensor(steps[0]['outputs']['logits']['data']).view(-1, 256)
            with torch.no_grad():
                d1 = (nocache(torch.tensor([list(p12)]))[0] - lg_pref).abs().max().item()
            d2 = (lg_full - lg_steps).abs().max().item()
            print(f'  torch kv-cache vs no-cache: prefill max|diff| {d1:.2e}, decode max|diff| {d2:.2e}', flush=True)
            assert d1 < 1e-4 and d2 < 1e-4
        if fused:  # the fused form computes the same function as the unfused one
            with torch.no_grad():
                ids = torch.tensor([list(p64)])
                d = (NoCacheExport(fused_model)(ids) - NoCacheExport(ref_model)(ids)).abs().max().item()
            print(f'  torch fused vs unfused: max|diff| {d:.2e}', flush=True)
            assert d < 1e-4
        json.dump(dict(model=name, file=name + '.onnx', config=cfg, opset=opset,
                       exporter=f'torch.onnx.export (TorchScript) torch {torch.__version__}' + (', fused q|k|v and gate|up projections' if fused else ''),
                       cases=cases, checks=checks),
                  open(os.path.join(args.work, name + '.cases.json'), 'w'))
        exported.append(name)
    print('exported', exported)


def cmd_weights(args):
    """Zn.pt from Zn_nocache_opset*.onnx: the exported fp32 weights are the trained ones, so the .pt files need not
    be kept. Linear weights are found by the exporter's scoped MatMul node names and transposed back; embedding
    and norm weights keep their names. Checked by exporting again (byte-identical files)."""
    import onnx
    from onnx import numpy_helper
    cfg = CONFIGS[args.model]
    src = sorted(f for f in os.listdir(args.out) if f.startswith(f'{args.model}_nocache_opset') and 'opset23' not in f)[0]
    m = onnx.load(os.path.join(args.out, src))
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    model = LlamaForCausalLM(cfg)
    sd = {}
    for n in m.graph.node:
        if n.op_type == 'MatMul' and n.input[1] in inits:
            scope = n.name.rsplit('/', 1)[0].strip('/').replace('/', '.')  # /model/layers.0/self_attn/q_proj/MatMul
            sd[scope + '.weight'] = inits[n.input[1]].t().contiguous()
    sd = {k[len('model.'):]: v for k, v in sd.items()}  # the export wrapper's scope
    for k in model.state_dict():
        if 'model.' + k in inits:
            sd[k] = inits['model.' + k]
    if cfg['tie_word_embeddings']:  # written twice by constant folding; must be the same matrix
        assert torch.equal(sd['lm_head.weight'], sd['embed_tokens.weight'])
    missing = set(model.state_dict()) - set(sd)
    assert not missing, f'{src}: no weights for {sorted(missing)}'
    model.load_state_dict(sd)
    torch.save(model.state_dict(), os.path.join(args.out, f'{args.model}.pt'))
    print(f'{args.model}.pt from {src}: {len(sd)} tensors')


def cmd_table(args):
    """The README tables: models (from *.training.json) and files (sizes, torch-vs-ORT agreement)."""
    agree = {a['model']: a for a in json.load(open(os.path.join(args.out, 'agreement.json')))} \
        if os.path.exists(os.path.join(args.out, 'agreement.json')) else {}
    print('| model | hidden | layers | heads / kv (group) | head dim | FFN | tied | parameters | steps | training (1 thread) | val loss (nats/byte) | **val perplexity** | val top-1 | train loss |')
    print('|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|')
    for z in ZOO:
        f = os.path.join(args.out, f'{z}.training.json')
        if not os.path.exists(f):
            continue
        t = json.load(open(f))
        c = t['config']
        h, nq, nkv = c['hidden_size'], c['num_attention_heads'], c['num_key_value_heads']
        kind = 'MHA' if nq == nkv else f'GQA {nq // nkv}'
        print(f"| {z} | {h} | {c['num_hidden_layers']} | {nq} / {nkv} ({kind}) | {h // nq} | {c['intermediate_size']} | "
              f"{'yes' if c['tie_word_embeddings'] else 'no'} | {t['params']:,} | {t['steps']:,} | {t['train_time_s'] / 60:.1f} min | "
              f"{t['validation']['loss']:.3f} | **{t['validation']['ppl']:.2f}** | {100 * t['validation']['top1']:.1f}% | {t['train']['loss']:.3f} |")
    print()
    print('| file | bytes | ref.json bytes | torch vs ORT max logit diff | runs | argmax mismatches |')
    print('|---|---:|---:|---:|---:|---:|')
    for f in sorted(os.listdir(args.out)):
        if not f.endswith('.onnx'):
            continue
        n = f[:-5]
        ref = os.path.join(args.out, n + '.ref.json')
        a = agree.get(n)
        print(f"| `{f}` | {os.path.getsize(os.path.join(args.out, f)):,} | {os.path.getsize(ref) if os.path.exists(ref) else 0:,} | "
              + (f"{a['worst_logits']:.1e} | {a['runs']} | {a['argmax_mismatch']} |" if a else 'see make_opset23 | | |'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('cmd', choices=['corpus', 'train', 'weights', 'export', 'table'])
    ap.add_argument('model', nargs='?', default='Z1', choices=list(ZOO))
    ap.add_argument('--work', default='work')
    ap.add_argument('--out', default='.')
    ap.add_argument('--minutes', type=float, default=4.5)
    ap.add_argument('--steps', type=int, default=None)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--seed', type=int, default=None, help='default: the seed in ZOO')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--variants', default='nocache@17,kvcache@14',
                    help='comma list of KIND@OPSET, KIND in nocache, kvcache, fused_nocache, fused_kvcache')
    args = ap.parse_args()
    {'corpus': cmd_corpus, 'train': cmd_train, 'weights': cmd_weights, 'export': cmd_export, 'table': cmd_table}[args.cmd](args)


if __name__ == '__main__':
    main()
