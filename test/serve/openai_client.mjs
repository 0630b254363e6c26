// kiln-serve through the official `openai` npm client (run by serve_e2e.py).
//
//   node openai_client.mjs api BASE_URL SPEC.json
//       completions, chat, streaming, stop strings, n and id prompts; the
//       expected texts in SPEC.json come from kiln-generate on the same model
//   node openai_client.mjs concurrency BASE_URL MODEL N
//       N streaming requests open at once (all waiting behind one long
//       request, so they are truly concurrent), then all complete
//
// Exits 1 with a message on the first mismatch.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [mode, baseURL, ...rest] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/// Text per choice and finish reasons of a completions stream.
function joinCompletion(chunks) {
  const text = {}, finish = {};
  for (const c of chunks) {
    for (const ch of c.choices) {
      text[ch.index] = (text[ch.index] ?? '') + ch.text;
      if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
    }
  }
  return { text, finish };
}

async function api(spec) {
  const model = spec.model;
  const exp = spec.expected;
  const finishOf = (g) => (g.ids.length && g.ids[g.ids.length - 1] === 2 ? 'stop' : 'length');

  // Models.
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);
  assert.equal((await client.models.retrieve(model)).id, model);

  // Greedy completions equal kiln-generate's, with usage.
  for (const [key, prompt] of Object.entries(spec.prompts)) {
    const g = exp[key];
    const r = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.model, model);
    assert.equal(typeof r.created, 'number');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].index, 0);
    assert.equal(r.choices[0].text, g.text, `completion of ${JSON.stringify(prompt)}`);
    assert.equal(r.choices[0].finish_reason, finishOf(g));
    assert.deepEqual(r.usage, {
      prompt_tokens: g.prompt_ids.length,
      completion_tokens: g.ids.length,
      total_tokens: g.prompt_ids.length + g.ids.length,
    });
    // The same prompt as token ids, and as a list of one string.
    const byIds = await client.completions.create({ model, prompt: g.prompt_ids, max_tokens: 24, temperature: 0 });
    assert.equal(byIds.choices[0].text, g.text, 'prompt given as ids');
    const byList = await client.completions.create({ model, prompt: [prompt], max_tokens: 24, temperature: 0 });
    assert.equal(byList.choices[0].text, g.text, 'prompt given as a list of one string');

    // Streaming gives the same text, then the finish reason, then usage.
    const chunks = await collect(await client.completions.create({
      model, prompt, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } }));
    const joined = joinCompletion(chunks);
    assert.equal(joined.text[0], g.text, 'streamed completion');
    assert.equal(joined.finish[0], finishOf(g));
    assert.ok(chunks.length > 3, 'the stream came in pieces');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, g.ids.length);
    for (const c of chunks) assert.equal(c.id, chunks[0].id);
  }

  // The EOS prompt stops by itself: "stop" with fewer than max_tokens ids.
  assert.ok(exp.eos.ids.length < 24);

  // Stop strings cut the text, whole or streamed; nothing after the stop leaks.
  const g = exp.linux;
  const at = 12;
  const stop = g.text.slice(at, at + 3);
  const cut = g.text.slice(0, g.text.indexOf(stop));
  assert.ok(stop.length === 3 && cut.length <= at, `stop ${JSON.stringify(stop)} is in the text`);
  const stopped = await client.completions.create({ model, prompt: spec.prompts.linux, max_tokens: 24,
                                                    temperature: 0, stop: [stop, 'never-there'] });
  assert.equal(stopped.choices[0].text, cut, 'text cut at the stop string');
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  assert.ok(stopped.usage.completion_tokens < g.ids.length, 'generation stopped early');
  const stoppedStream = joinCompletion(await collect(await client.completions.create({
    model, prompt: spec.prompts.linux, max_tokens: 24, temperature: 0, stop, stream: true })));
  assert.equal(stoppedStream.text[0], cut, 'streamed text cut at the stop string');
  assert.equal(stoppedStream.finish[0], 'stop');

  // n choices with a seed: choice i is kiln-generate with seed + i.
  const s = spec.sampled;
  const two = await client.completions.create({ model, prompt: s.prompt, max_tokens: s.max_tokens,
                                                temperature: s.temperature, seed: s.seed, n: 2 });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.deepEqual(two.choices.map((c) => c.text), s.texts, 'sampled choices follow seed + i');
  const twoStream = joinCompletion(await collect(await client.completions.create({
    model, prompt: s.prompt, max_tokens: s.max_tokens, temperature: s.temperature, seed: s.seed, n: 2,
    stream: true })));
  assert.deepEqual([twoStream.text[0], twoStream.text[1]], s.texts, 'streamed sampled choices');

  // Chat with the default template.
  const chat = await client.chat.completions.create({ model, messages: spec.messages, max_tokens: 24,
                                                      temperature: 0 });
  assert.equal(chat.object, 'chat.completion');
  assert.match(chat.id, /^chatcmpl-/);
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(chat.choices[0].message.content, spec.chat.text, 'chat reply');
  assert.equal(chat.choices[0].finish_reason, finishOf(spec.chat));
  assert.equal(chat.usage.prompt_tokens, spec.chat.prompt_ids.length);
  const chatChunks = await collect(await client.chat.completions.create({
    model, messages: spec.messages, max_completion_tokens: 24, temperature: 0, stream: true }));
  assert.equal(chatChunks[0].object, 'chat.completion.chunk');
  assert.equal(chatChunks[0].choices[0].delta.role, 'assistant');
  const content = chatChunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(content, spec.chat.text, 'streamed chat reply');
  assert.equal(chatChunks[chatChunks.length - 1].choices[0].finish_reason, finishOf(spec.chat));

  // Errors come back as the client's typed errors.
  await assert.rejects(client.completions.create({ model: 'nope', prompt: 'x' }),
                       (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: 0 }),
                       (e) => e instanceof OpenAI.BadRequestError && e.type === 'invalid_request_error');
  await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: 5000 }),
                       (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  console.log('api: all checks passed');
}

async function scrape(name) {
  const res = await fetch(baseURL.replace(/\/v1$/, '') + '/metrics');
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return Number(line.split(' ')[1]);
}

async function concurrency(model, n) {
  // One long request holds the (serial) backend, so every request below
  // stays open, waiting, until it is cancelled.
  const blocker = await client.completions.create({ model, prompt: 'Linux is', max_tokens: 1000, n: 8,
                                                    ignore_eos: true, stream: true });
  const it = blocker[Symbol.asyncIterator]();
  await it.next();

  const started = Date.now();
  const requests = [];
  for (let i = 0; i < n; ++i) {
    requests.push((async () => {
      const chunks = await collect(await client.completions.create({
        model, prompt: `Request ${i}:`, max_tokens: 4, temperature: 0, ignore_eos: true, stream: true }));
      const joined = joinCompletion(chunks);
      assert.equal(joined.finish[0], 'length', `request ${i} finish`);
      assert.ok(joined.text[0].length > 0, `request ${i} text`);
      return chunks.length;
    })());
  }
  // All n are open at once: queued behind the blocker.
  let waiting = 0;
  for (let tries = 0; tries < 1000 && waiting < n; ++tries) {
    waiting = await scrape('kiln_num_requests_waiting');
    if (waiting < n) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(waiting, n, `only ${waiting} of ${n} requests were waiting at once`);
  blocker.controller.abort();  // the client goes away: the blocker is cancelled
  const counts = await Promise.all(requests);
  assert.equal(counts.length, n);
  console.log(`concurrency: ${n} streams open together, all complete in ${Date.now() - started} ms`);
}

try {
  if (mode === 'api') await api(JSON.parse(readFileSync(rest[0], 'utf8')));
  else if (mode === 'concurrency') await concurrency(rest[0], Number(rest[1]));
  else throw new Error(`unknown mode ${mode}`);
} catch (e) {
  console.error(`openai_client.mjs ${mode}: ${e.stack ?? e}`);
  process.exit(1);
}
