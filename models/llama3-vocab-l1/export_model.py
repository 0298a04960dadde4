"""make_model.py export: L1 to ONNX, with and without KV cache, sharing one fp16 external-data file for the tied
embedding matrix, plus the torch outputs make_refs.mjs checks onnxruntime against.

The TorchScript exporter writes a tied matrix twice (the Gather table and a constant-folded transpose for the
lm_head MatMul, 2 x 24.6 MB fp32). Here both read one fp16 initializer (12.3 MB, external data `L1.embed.fp16.bin`)
through Cast(to float): the Gather directly, the lm_head MatMul through a Transpose, as the opset-23 zoo files share it.
The trained weights were rounded to fp16 values before evaluation (make_model.py round_fp16), so this is exact."""
import json
import os

import numpy as np
import torch

from make_model import BOS, CONFIG, EMBED_FILE, NAME, LlamaForCausalLM, NoCacheExport, KVCacheExport, load_ids  # noqa: F401


def share_tied_embedding(m, embed_name, out_dir):
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    E = numpy_helper.to_array(inits[embed_name])
    # the folded lm_head transpose: an initializer equal to E^T read by a MatMul
    folded = [t.name for t in g.initializer if t.name != embed_name and tuple(t.dims) == (E.shape[1], E.shape[0])
              and np.array_equal(numpy_helper.to_array(t), E.T)]
    assert len(folded) == 1, folded
    half = E.astype(np.float16)
    assert np.array_equal(half.astype(np.float32), E), 'weights must hold fp16 values'
    blob = half.tobytes()
    path = os.path.join(out_dir, EMBED_FILE)
    if os.path.exists(path):
        assert open(path, 'rb').read() == blob
    else:
        open(path, 'wb').write(blob)
    t = TensorProto(name=embed_name + '.fp16', data_type=TensorProto.FLOAT16, dims=list(E.shape))
    t.data_location = TensorProto.EXTERNAL
    for k, v in (('location', EMBED_FILE), ('offset', '0'), ('length', str(len(blob)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    keep = [x for x in g.initializer if x.name not in (embed_name, folded[0])]
    del g.initializer[:]
    g.initializer.extend(keep + [t])
    cast = helper.make_node('Cast', [t.name], [embed_name], name='/model/embed_tokens/Cast', to=TensorProto.FLOAT)
    tr = helper.make_node('Transpose', [embed_name], [folded[0]], name='/model/lm_head/Transpose', perm=[1, 0])
    nodes = [cast, tr] + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


def cmd_export(args):
    import onnx
    torch.set_num_threads(args.threads)
    model = LlamaForCausalLM(CONFIG)
    model.load_state_dict(torch.load(os.path.join(args.work, f'{NAME}.pt')))
    model.eval()
    L, nkv = CONFIG['num_hidden_layers'], CONFIG['num_key_value_heads']
    hd = CONFIG['hidden_size'] // CONFIG['num_attention_heads']
    val = load_ids(args.work, 'validation')
    prompt = json.load(open(os.path.join(args.work, 'prompt.json')))
    os.makedirs(os.path.join(args.work, 'torch'), exist_ok=True)

    def save_out(key, t):  # torch outputs as raw float32 (128k-wide logits are too large for JSON)
        f = os.path.join(args.work, 'torch', key + '.f32')
        t.detach().contiguous().numpy().astype('<f4').tofile(f)
        return dict(dims=list(t.shape), file=os.path.relpath(f, args.work))

    ints = lambda t: dict(dims=list(t.shape), dtype='int64', data=t.reshape(-1).tolist())
    kv_in = ['input_ids', 'attention_mask', 'position_ids']
    kv_out = ['logits']
    axes = {'input_ids': {1: 'sequence_length'}, 'attention_mask': {1: 'total_sequence_length'},
            'position_ids': {1: 'sequence_length'}, 'logits': {1: 'sequence_length'}}
    for i in range(L):
        for n in ('key', 'value'):
            kv_in.append(f'past_key_values.{i}.{n}')
            kv_out.append(f'present.{i}.{n}')
            axes[f'past_key_values.{i}.{n}'] = {2: 'past_sequence_length'}
            axes[f'present.{i}.{n}'] = {2: 'total_sequence_length'}
    empty = lambda: [torch.zeros(1, nkv, 0, hd) for _ in range(2 * L)]
    nocache, kv = NoCacheExport(model).eval(), KVCacheExport(model).eval()
    # nocache: two windows of real validation tokens at token 6,000 and 7,000 (~bytes 23,000+: past eval-dev.txt)
    windows = {'tokens16': val[6000:6016], 'tokens64': val[7000:7064]}
    for kind, opset in (('nocache', 17), ('kvcache', 14)):
        name = f'{NAME}_{kind}_opset{opset}'
        path = os.path.join(args.out, name + '.onnx')
        if kind == 'nocache':
            torch.onnx.export(nocache, (val[:5].unsqueeze(0),), path, input_names=['input_ids'], output_names=['logits'],
                              dynamic_axes={'input_ids': {1: 'sequence_length'}, 'logits': {1: 'sequence_length'}},
                              opset_version=opset, do_constant_folding=True)
        else:
            g2 = torch.Generator().manual_seed(3)
            past = [torch.randn(1, nkv, 5, hd, generator=g2) for _ in range(2 * L)]
            ids = val[:3].unsqueeze(0)
            dummy = tuple([ids, torch.ones(1, 8, dtype=torch.long), torch.arange(5, 8).unsqueeze(0)] + past)
            torch.onnx.export(kv, dummy, path, input_names=kv_in, output_names=kv_out, dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True)
        m = onnx.load(path)
        share_tied_embedding(m, 'model.embed_tokens.weight', args.out)
        m.producer_name = 'pytorch'
        m.doc_string = (f'fhec model {NAME}: Llama-3-architecture LM with the Llama 3 vocabulary (128,256 tokens, tied embeddings) '
                        f'trained on Debian fortunes; exported by torch.onnx.export (TorchScript) torch {torch.__version__}, opset {opset}, '
                        f'tied matrix as one fp16 external-data initializer; config {json.dumps(CONFIG)}')
        onnx.save(m, path)
        onnx.checker.check_model(path, full_check=True)
        print('exported + checked', path, os.path.getsize(path), flush=True)

        cases = []
        if kind == 'nocache':
            for label, ids in windows.items():
                with torch.no_grad():
                    lg = nocache(ids.unsqueeze(0))
                cases.append(dict(name=label, steps=[dict(inputs={'input_ids': ints(ids.unsqueeze(0))}, outputs={'logits': save_out(f'{name}.{label}', lg)})]))
        else:
            # the prompt (as fhec tokenizes it), then 4 greedy single-token decode steps on the presents
            ids, past, P, steps, generated = torch.tensor([prompt['ids']]), empty(), 0, [], []
            for s in range(5):
                S = ids.shape[1]
                inp = [ids, torch.ones(1, P + S, dtype=torch.long), torch.arange(P, P + S).unsqueeze(0)] + past
                with torch.no_grad():
                    outs = kv(*inp)
                steps.append(dict(inputs={k: ints(v) if v.dtype == torch.int64 else save_out(f'{name}.greedy.{s}.{k}', v) for k, v in zip(kv_in, inp)},
                                  outputs={k: save_out(f'{name}.greedy.{s}.{k}', v) for k, v in zip(kv_out, outs)}))
                nxt = int(outs[0][0, -1].argmax())
                generated.append(nxt)
                past, P, ids = list(outs[1:]), P + S, torch.tensor([[nxt]])
            cases.append(dict(name='greedy_prompt_plus4', text=prompt['text'], greedy_tokens=generated, steps=steps))
            # consistency: KV-cache decode logits == no-cache logits of the whole sequence
            full = torch.tensor([prompt['ids'] + generated[:4]])
            with torch.no_grad():
                lg_full = nocache(full)[0]
            d = max((lg_full[len(prompt['ids']) - 1 + k] - torch.from_numpy(np.fromfile(os.path.join(args.work, steps[k]['outputs']['logits']['file']), dtype='<f4')).view(-1, CONFIG['vocab_size'])[-1]).abs().max().item() for k in range(5))
            print(f'  torch kv-cache vs no-cache max|diff| {d:.2e}', flush=True)
            assert d < 1e-4
        json.dump(dict(model=name, file=name + '.onnx', config=CONFIG, opset=opset,
                       exporter=f'torch.onnx.export (TorchScript) torch {torch.__version__}; tied matrix shared as fp16 external data',
                       cases=cases), open(os.path.join(args.work, name + '.cases.json'), 'w'))
