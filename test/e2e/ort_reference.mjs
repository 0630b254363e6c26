#!/usr/bin/env node
// ort_reference.mjs - ONNX Runtime's prefill logits and greedy ids for a
// model_with_past.onnx, as the reference of check_quantized_onnx.py and of
// python/make_quantized_onnx.py --check-ort.
//
//   node test/e2e/ort_reference.mjs --model DIR/model_with_past.onnx --prompt-ids 1,2,3
//        [--decode 48] [--threads 2] [--logits-out FILE.npy] [--optimization basic|all]
//
// Prefill of the prompt from an empty past, then --decode greedy steps feeding
// each step's present back as the next past. Prints one JSON line
// {"generated_ids": [...]}; --logits-out writes the prefill logits [1, n, V].
//
// --optimization defaults to `basic`: ONNX Runtime's extended optimizations
// fuse DequantizeLinear -> MatMul into MatMulIntegerToFloat, which quantizes
// the activations to uint8 at run time (a different computation from the
// graph's: ~0.1 max logit difference on llama-s); at `basic` it computes the
// graph as written. MatMulNBits runs its own kernel at either level.
// onnxruntime-node comes from bench/node_modules (cd bench && npm ci).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'bench', 'package.json'));
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { model: null, promptIds: null, decode: 48, threads: 2, logitsOut: null, optimization: 'basic' };
  const keys = { '--model': 'model', '--prompt-ids': 'promptIds', '--decode': 'decode', '--threads': 'threads',
                 '--logits-out': 'logitsOut', '--optimization': 'optimization' };
  for (let i = 0; i < argv.length; i += 2) {
    const k = keys[argv[i]];
    if (!k || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    a[k] = argv[i + 1];
  }
  if (!a.model || !a.promptIds) throw new Error('--model and --prompt-ids are required');
  a.promptIds = a.promptIds.split(',').map(Number);
  a.decode = Number(a.decode);
  a.threads = Number(a.threads);
  if (!['disabled', 'basic', 'extended', 'all'].includes(a.optimization)) throw new Error('bad --optimization');
  return a;
}

const i64 = (values, dims) => new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);

function argmaxLast(logits) {
  const [, n, v] = logits.dims;
  let best = 0;
  for (let j = 1, o = (n - 1) * v; j < v; j++) if (logits.data[o + j] > logits.data[o + best]) best = j;
  return best;
}

function writeNpyF32(file, tensor) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tensor.dims.join(', ')},), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'], intraOpNumThreads: a.threads, interOpNumThreads: 1,
    graphOptimizationLevel: a.optimization,
  });
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  if (!pastNames.length) throw new Error(`${a.model} has no past_key_values inputs (give model_with_past.onnx)`);
  const meta = (session.inputMetadata || []).find((m) => m.name === pastNames[0]);
  let kv = meta && Array.isArray(meta.shape) ? [meta.shape[1], meta.shape[3]] : null;
  if (!kv || typeof kv[0] !== 'number') {
    const cfg = JSON.parse(fs.readFileSync(path.join(path.dirname(a.model), 'config.json'), 'utf8'));
    const heads = cfg.num_attention_heads ?? cfg.n_head;
    kv = [cfg.num_key_value_heads ?? heads, cfg.head_dim ?? (cfg.hidden_size ?? cfg.n_embd) / heads];
  }
  const ids = a.promptIds;
  let total = ids.length;
  const feeds = { input_ids: i64(ids, [1, total]), attention_mask: i64(new Array(total).fill(1), [1, total]),
                  position_ids: i64(ids.map((_, i) => i), [1, total]) };
  for (const n of pastNames) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [1, kv[0], 0, kv[1]]);
  let out = await session.run(feeds);
  if (a.logitsOut) writeNpyF32(a.logitsOut, out.logits);
  const generated = [];
  for (let step = 0; step < a.decode; step++) {
    const next = argmaxLast(out.logits);
    generated.push(next);
    const f = { input_ids: i64([next], [1, 1]), position_ids: i64([total], [1, 1]) };
    total += 1;
    f.attention_mask = i64(new Array(total).fill(1), [1, total]);
    for (const n of pastNames) f[n] = out[n.replace('past_key_values.', 'present.')];
    out = await session.run(f);
  }
  process.stdout.write(JSON.stringify({ generated_ids: generated }) + '\n');
}

main().catch((e) => {
  console.error(`ort_reference: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
