#!/usr/bin/env node
// ort_llm_bench.mjs - ONNX Runtime (CPU EP) baseline for kiln's LLM benchmark.
//
//   node bench/ort_llm_bench.mjs --model DIR/model_with_past.onnx [--threads 2]
//        [--prompt-len 128 | --prompt-ids 1,2,3] [--decode 64] [--reps 3] [--seed 0]
//        [--logits-out FILE.npy] [--interactive]
//
// Loads a `model_with_past.onnx` (inputs input_ids / attention_mask /
// position_ids / past_key_values.N.key|value, outputs logits / present.N.key|value),
// runs a prefill of the prompt from an empty past, then greedy decode steps that
// feed each step's present back as the next past. One warm-up run, then --reps
// timed runs; only session.run is timed. Prints one JSON line on stdout:
//   {"prefill_tok_s", "decode_tok_s", "peak_rss_mib", ...}
// where the two rates are medians over the repetitions (the best ones follow
// as *_best) and peak_rss_mib is process.resourceUsage().maxRSS.
// --logits-out writes the prefill logits [1, N, vocab] as a .npy file (tests use
// it to check an export against PyTorch's reference).
// --interactive (for llm_bench.py, which interleaves ORT's runs with kiln's so
// that both see the same background load): after the warm-up it prints
// {"ready": true}, then runs one timed repetition per "run" line on stdin and
// answers each with {"prefill_tok_s", "decode_tok_s"}; at end of input it prints
// the summary line over those runs and exits (--reps is ignored).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

function usage(msg) {
  if (msg) console.error(`ort_llm_bench: ${msg}`);
  console.error('usage: node ort_llm_bench.mjs --model model_with_past.onnx [--threads N] ' +
                '[--prompt-len N | --prompt-ids a,b,c] [--decode M] [--reps R] [--seed S] [--logits-out F.npy]');
  process.exit(msg ? 1 : 0);
}

function parseArgs(argv) {
  const a = { threads: 2, promptLen: 128, decode: 64, reps: 3, seed: 0, promptIds: null, logitsOut: null,
              model: null, interactive: false };
  const keys = { '--model': 'model', '--threads': 'threads', '--prompt-len': 'promptLen', '--decode': 'decode',
                 '--reps': 'reps', '--seed': 'seed', '--prompt-ids': 'promptIds', '--logits-out': 'logitsOut' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-h' || argv[i] === '--help') usage();
    if (argv[i] === '--interactive') { a.interactive = true; continue; }
    const k = keys[argv[i]];
    if (!k || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    a[k] = argv[++i];
  }
  for (const k of ['threads', 'promptLen', 'decode', 'reps', 'seed']) {
    a[k] = Number(a[k]);
    if (!Number.isInteger(a[k]) || a[k] < 0) usage(`--${k} must be a non-negative integer`);
  }
  if (!a.model) usage('--model is required');
  if (a.promptIds !== null) {
    a.promptIds = a.promptIds.split(',').map(Number);
    if (!a.promptIds.length || a.promptIds.some((x) => !Number.isInteger(x) || x < 0)) usage('bad --prompt-ids');
  }
  return a;
}

/// Deterministic prompt ids in [3, vocab): the same generator as bench/llm_bench.py's.
export function promptIds(n, vocab, seed) {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const ids = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids.push(3 + (s % (vocab - 3)));
  }
  return ids;
}

function readConfig(modelPath) {
  const p = path.join(path.dirname(modelPath), 'config.json');
  return fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) : {};
}

/// [kv_heads, head_dim] of the past inputs: from the graph's metadata, else from config.json.
function kvShape(session, cfg) {
  const name = session.inputNames.find((n) => n.startsWith('past_key_values.'));
  if (!name) return null;
  const meta = (session.inputMetadata || []).find((m) => m.name === name);
  if (meta && Array.isArray(meta.shape) && typeof meta.shape[1] === 'number' && typeof meta.shape[3] === 'number') {
    return [meta.shape[1], meta.shape[3]];
  }
  const heads = cfg.num_attention_heads ?? cfg.n_head;
  const kvh = cfg.num_key_value_heads ?? heads;
  const hd = cfg.head_dim ?? (cfg.hidden_size ?? cfg.n_embd) / heads;
  if (!kvh || !hd) throw new Error('cannot tell the KV cache shape (no metadata, no config.json)');
  return [kvh, hd];
}

function i64(values, dims) {
  return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
}

function argmaxLast(logits) {
  const [, n, v] = logits.dims;
  const d = logits.data;
  let best = 0;
  let bestVal = -Infinity;
  for (let j = 0, o = (n - 1) * v; j < v; j++) {
    if (d[o + j] > bestVal) { bestVal = d[o + j]; best = j; }
  }
  return best;
}

/// One prefill + `decode` greedy steps. Returns the seconds spent in session.run for each part.
async function generate(session, ids, decode, kv, wantLogits) {
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const feeds = {};
  let total = ids.length;
  feeds.input_ids = i64(ids, [1, ids.length]);
  feeds.attention_mask = i64(new Array(total).fill(1), [1, total]);
  feeds.position_ids = i64(ids.map((_, i) => i), [1, ids.length]);
  for (const n of pastNames) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [1, kv[0], 0, kv[1]]);

  let t0 = performance.now();
  let out = await session.run(feeds);
  const prefillS = (performance.now() - t0) / 1e3;
  const prefillLogits = wantLogits ? out.logits : null;
  let decodeS = 0;
  const generated = [];
  for (let step = 0; step < decode; step++) {
    const next = argmaxLast(out.logits);
    generated.push(next);
    const f = {};
    f.input_ids = i64([next], [1, 1]);
    f.position_ids = i64([total], [1, 1]);
    total += 1;
    f.attention_mask = i64(new Array(total).fill(1), [1, total]);
    for (const n of pastNames) f[n] = out[n.replace('past_key_values.', 'present.')];
    t0 = performance.now();
    out = await session.run(f);
    decodeS += (performance.now() - t0) / 1e3;
  }
  return { prefillS, decodeS, generated, prefillLogits };
}

function writeNpyF32(file, tensor) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tensor.dims.join(', ')},), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1;
                         return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const cfg = readConfig(a.model);
  const tLoad = performance.now();
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadS = (performance.now() - tLoad) / 1e3;
  const kv = kvShape(session, cfg);
  if (!kv) throw new Error(`${a.model} has no past_key_values inputs (give model_with_past.onnx)`);
  const vocab = cfg.vocab_size ?? 2048;
  const ids = a.promptIds ?? promptIds(a.promptLen, vocab, a.seed);

  const warm = await generate(session, ids, a.decode, kv, Boolean(a.logitsOut));
  if (a.logitsOut) writeNpyF32(a.logitsOut, warm.prefillLogits);
  const prefill = [];
  const decode = [];
  const once = async () => {
    const g = await generate(session, ids, a.decode, kv, false);
    prefill.push(ids.length / g.prefillS);
    if (a.decode) decode.push(a.decode / g.decodeS);
  };
  if (a.interactive) {
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    const readline = await import('node:readline');
    for await (const line of readline.createInterface({ input: process.stdin })) {
      if (line.trim() !== 'run') continue;
      await once();
      process.stdout.write(JSON.stringify({ prefill_tok_s: prefill.at(-1), decode_tok_s: decode.at(-1) ?? null }) +
                           '\n');
    }
  } else {
    for (let r = 0; r < a.reps; r++) await once();
  }
  const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
  const result = {
    prefill_tok_s: round(prefill.length ? median(prefill) : null),
    decode_tok_s: round(decode.length ? median(decode) : null),
    peak_rss_mib: round(process.resourceUsage().maxRSS / 1024),
    prefill_tok_s_best: round(prefill.length ? Math.max(...prefill) : null),
    decode_tok_s_best: round(decode.length ? Math.max(...decode) : null),
    prompt_tokens: ids.length,
    generated_tokens: a.decode,
    threads: a.threads,
    reps: prefill.length,
    load_s: round(loadS),
    generated_ids: warm.generated,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  console.error(`ort_llm_bench: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
