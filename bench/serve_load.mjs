// serve_load.mjs - the load generator of bench/serve_bench.py: C concurrent
// clients, each sending R streaming completions one after another to a
// kiln-serve, from one Node.js event loop (lighter on a small machine than
// one OS thread per client). Prints one JSON line:
//   {"wall_s", "requests": [{"ttft_s", "gaps_s": [...], "tokens"}...], "errors": [...]}
//
//   node bench/serve_load.mjs --port P --model NAME --concurrency C --requests R
//        --max-tokens N --prompts FILE.json   (a JSON list of token-id lists)
import { readFileSync } from 'node:fs';
import http from 'node:http';

function args() {
  const a = {};
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  return a;
}

const opt = args();
const port = Number(opt.port);
const concurrency = Number(opt.concurrency);
const perClient = Number(opt.requests);
const maxTokens = Number(opt['max-tokens']);
const prompts = JSON.parse(readFileSync(opt.prompts, 'utf8'));
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function completion(ids) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: opt.model, prompt: ids, max_tokens: maxTokens, temperature: 0,
                                  ignore_eos: true, stream: true });
    const t0 = performance.now();
    let ttft = null, last = 0, tokens = 0, buf = '';
    const gaps = [];
    const req = http.request({ port, host: '127.0.0.1', path: '/v1/completions', method: 'POST', agent,
                               headers: { 'Content-Type': 'application/json',
                                          'Content-Length': Buffer.byteLength(body) } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          // A chunk with a choice is one token event (text held back for a
          // stop string or a partial character arrives in a later chunk).
          if (event.indexOf('"choices":[]') >= 0) continue;
          const now = performance.now();
          tokens += 1;
          if (ttft === null) ttft = (now - t0) / 1e3;
          else gaps.push((now - last) / 1e3);
          last = now;
        }
      });
      res.on('end', () => resolve({ ttft_s: ttft, gaps_s: gaps, tokens }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const results = [], errors = [];
const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, async (_, k) => {
  for (let j = 0; j < perClient; ++j) {
    try {
      results.push(await completion(prompts[(k * perClient + j) % prompts.length]));
    } catch (e) {
      errors.push(String(e));
    }
  }
}));
const wall = (performance.now() - t0) / 1e3;
process.stdout.write(JSON.stringify({ wall_s: wall, requests: results, errors }) + '\n');
agent.destroy();
