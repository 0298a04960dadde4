#!/usr/bin/python3
"""Train and export L1, a tiny Llama-3-architecture model with the real Llama 3 vocabulary (128,256 tokens,
tied input/output embeddings as Llama 3.2), on the project's corpus tokenized with the Llama 3 tokenizer.

Runs with Debian 12's /usr/bin/python3 + python3-torch (1.13.1) + python3-onnx (1.12.0). The model, the corpus
split and the export wrappers are imported from ../zoo/make_zoo.py (one implementation), only the vocabulary differs.

    /usr/bin/python3 models/zoo/make_zoo.py corpus --work W            # train.txt / validation.txt (the shared split)
    node models/llama3-vocab-l1/tokenize.mjs W                          # W/{train,validation}.ids (Llama 3 tokenizer)
    /usr/bin/python3 models/llama3-vocab-l1/make_model.py train --work W --out models/llama3-vocab-l1 \
        --minutes 13 --threads 1 --batch 32 --lr 1e-2 --eval-windows 32        # W/L1.pt + L1.training.json (as shipped)
    /usr/bin/python3 models/llama3-vocab-l1/make_model.py export --work W --out models/llama3-vocab-l1
    node models/llama3-vocab-l1/make_refs.mjs W models/llama3-vocab-l1
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'zoo'))
from make_zoo import LlamaForCausalLM, NoCacheExport, KVCacheExport  # noqa: E402

NAME = 'L1'
VOCAB = 128256
BOS = 128000
CONFIG = dict(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
              tie_word_embeddings=True)
SEED = 21
EMBED_FILE = 'L1.embed.fp16.bin'  # the tied matrix, fp16, shared by both ONNX files as external data


def load_ids(work, split):
    return torch.from_numpy(__import__('numpy').fromfile(os.path.join(work, split + '.ids'), dtype='<i4').astype('int64'))


@torch.no_grad()
def evaluate(model, data, ctx, max_windows=None, bs=8):
    """Non-overlapping windows of ctx+1 tokens; each predicts ctx targets with 0..ctx-1 tokens of context.
    Mean cross-entropy (nats/token), perplexity per token, top-1 accuracy."""
    model.eval()
    n = (len(data) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    tot_loss, tot_correct, tot = 0.0, 0, 0
    for b in range(0, n, bs):
        s = [i * ctx for i in range(b, min(n, b + bs))]
        x = torch.stack([data[i:i + ctx] for i in s])
        y = torch.stack([data[i + 1:i + ctx + 1] for i in s])
        logits, _ = model(x)
        tot_loss += F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1), reduction='sum').item()
        tot_correct += (logits.argmax(-1) == y).sum().item()
        tot += y.numel()
    model.train()
    loss = tot_loss / tot
    return dict(loss=loss, ppl=math.exp(loss), top1=tot_correct / tot, targets=tot)


def sampled_softmax_loss(model, x, y, negatives, g):
    """Cross-entropy over a candidate set instead of all 128,256 tokens (a full softmax costs ~15 s a step on this
    shared machine): the batch's own targets, plus `negatives` tokens drawn uniformly from all the others, whose
    logits get + log(others / negatives) so their sum estimates the others' share of the partition function
    (sampled softmax with the log-Q correction). Every token of the vocabulary can be drawn, so tokens the corpus
    never uses are pushed down too. Evaluation always uses the full softmax."""
    h = model.norm(hidden_before_norm(model, x)).reshape(-1, CONFIG['hidden_size'])
    targets, inv = torch.unique(y.reshape(-1), return_inverse=True)
    mask = torch.ones(VOCAB, dtype=torch.bool)
    mask[targets] = False
    others = mask.nonzero().squeeze(1)
    neg = others[torch.randperm(len(others), generator=g)[:negatives]]
    W = model.lm_head.weight
    logits = torch.cat([h @ W[targets].t(), h @ W[neg].t() + math.log(len(others) / negatives)], 1)
    return F.cross_entropy(logits, inv)


def hidden_before_norm(model, x):
    """LlamaForCausalLM.forward up to the final norm (make_zoo.py's model, prefill without cache)."""
    bsz, seq_len = x.shape
    h = model.embed_tokens(x)
    pos = torch.arange(seq_len)
    mask = model._causal_mask(None, bsz, seq_len, 0, pos, h.dtype)
    pe = model.rotary_emb(h, pos.unsqueeze(0))
    for layer in model.layers:
        h, _ = layer(h, pe, mask, None)
    return h


def round_fp16(model):
    """The shipped weights are fp16 (the embedding) or fp32 holding fp16 values: round once, so torch, the
    ONNX files and their references compute the same function."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def cmd_train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    ctx = CONFIG['max_position_embeddings']
    train, val = load_ids(args.work, 'train'), load_ids(args.work, 'validation')
    model = LlamaForCausalLM(CONFIG)
    nparams = sum(p.numel() for p in model.parameters())  # the tied matrix counts once
    print(f'{NAME} params {nparams} train tokens {len(train)} val tokens {len(val)}', flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(SEED)

    def get_batch():
        ix = torch.randint(0, len(train) - ctx - 1, (args.batch,), generator=g)
        return torch.stack([train[i:i + ctx] for i in ix]), torch.stack([train[i + 1:i + ctx + 1] for i in ix])

    warmup, budget, t0, step, log = 50, args.minutes * 60, time.time(), 0, []
    while True:  # cosine schedule over the wall-time budget (shared machine), as make_zoo.py
        progress = (time.time() - t0) / budget
        if progress >= 1:
            break
        lr = args.lr * (step + 1) / warmup if step < warmup else args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for pg in opt.param_groups:
            pg['lr'] = lr
        x, y = get_batch()
        loss = sampled_softmax_loss(model, x, y, args.negatives, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 250 == 0:
            ev = evaluate(model, val, ctx, max_windows=4)
            rec = dict(step=step, time_s=round(time.time() - t0, 1), lr=lr, train_batch_loss=loss.item(), val_loss_subset=ev['loss'])
            log.append(rec)
            print(json.dumps(rec), flush=True)
    train_time = time.time() - t0
    round_fp16(model)
    ev_val = evaluate(model, val, ctx, max_windows=args.eval_windows)
    ev_train = evaluate(model, train[: len(val)], ctx, max_windows=args.eval_windows)
    unigram = torch.bincount(train, minlength=VOCAB).double() + 1  # add-one unigram baseline, for scale
    unigram_loss = -(unigram / unigram.sum()).log()[val[1:]].mean().item()
    metrics = dict(model=NAME, config=CONFIG, params=nparams, steps=step, batch=args.batch, negatives=args.negatives, ctx=ctx, lr=args.lr, warmup=warmup,
                   schedule=f'by wall time ({args.minutes} min)',
                   optimizer='AdamW betas (0.9, 0.95), weight decay 0.1 on matrices, grad clip 1.0, cosine to lr/10; sampled softmax: batch targets + %d uniform negatives with log-Q correction' % args.negatives,
                   threads=args.threads, seed=SEED, train_time_s=round(train_time, 1),
                   corpus='Debian fortunes, the split of ../shared/models (make_zoo.py corpus), tokenized by tokenize.mjs (Llama 3 tokenizer)',
                   eval_note='full softmax over 128,256 tokens; weights rounded to fp16 (as shipped); non-overlapping 128-token windows from the start of the validation split (%s windows); train row: as many windows of the training split' % (args.eval_windows or 'all'),
                   train=ev_train, validation=ev_val, unigram_baseline_ppl=math.exp(unigram_loss), log=log, torch=torch.__version__)
    torch.save(model.state_dict(), os.path.join(args.work, f'{NAME}.pt'))  # not shipped: the ONNX files hold the weights
    json.dump(metrics, open(os.path.join(args.out, f'{NAME}.training.json'), 'w'), indent=1)
    print(json.dumps({k: metrics[k] for k in ('train', 'validation', 'unigram_baseline_ppl', 'steps', 'train_time_s')}, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('cmd', choices=['train', 'export'])
    ap.add_argument('--work', default='work')
    ap.add_argument('--out', default='.')
    ap.add_argument('--minutes', type=float, default=20)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--negatives', type=int, default=2048)
    ap.add_argument('--eval-windows', type=int, default=None, help='default: the whole validation split')
    args = ap.parse_args()
    {'train': cmd_train, 'export': lambda a: __import__('export_model').cmd_export(a)}[args.cmd](args)


if __name__ == '__main__':
    main()
