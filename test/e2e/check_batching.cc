//===- check_batching.cc - Continuous batching on a real compiled LLM -------===//
//
//   check_batching ARTIFACT.kiln [--threads 2]
//
// Holds the BatchingBackend (runtime/serve) to the single-sequence Engine on
// a paged artifact (compiled by the ctest wrapper from a shared fixture):
//   alone       each prompt alone through the backend == Engine greedy ids
//   batched 64  64 requests submitted at once (4 prompts x 16, varied
//               lengths) each give exactly their alone ids
//   preempted   the same 64 with a KV cache of one context: preemptions
//               happen and outputs are still identical; every block free
//   n > 1       n = 3 at temperature 0: three identical choices; at
//               temperature 1 with one seed: choice i == choice 0 of a
//               request seeded seed + i (copy-on-write keeps them apart)
//   speculation the 64 again with n-gram speculation in the batch: identical
//   prefix      a repeated prompt hits the prefix cache
//   cancel      cancelling half of 16 running requests ends them with
//               kCancelled at once; afterwards every block is free
// Prints one line per check and "N passed, N failed"; exit 1 on failure.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/llm/engine.h"
#include "runtime/llm/paged_model.h"
#include "runtime/serve/batching_backend.h"

using namespace kiln;

namespace {

int passed = 0, failed = 0;
void Report(const std::string& name, bool ok, const std::string& detail) {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stdout);
  (ok ? passed : failed) += 1;
}

struct Outcome {
  std::map<int, std::vector<int64_t>> ids;  // choice -> ids
  std::map<int, serve::FinishReason> reasons;
  int done = 0;
};

/// Submits every request at once and waits for all of them.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Outcome> outcomes;
  int pending_choices = 0;

  StatusOr<std::vector<uint64_t>> SubmitAll(serve::Backend& backend, const std::vector<serve::GenerationRequest>& reqs) {
    outcomes.assign(reqs.size(), {});
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < reqs.size(); ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        pending_choices += reqs[i].n;
      }
      KILN_ASSIGN_OR_RETURN(uint64_t id, backend.Submit(
          reqs[i],
          [this, i](int c, int64_t tok) {
            std::lock_guard<std::mutex> lock(mu);
            outcomes[i].ids[c].push_back(tok);
          },
          [this, i](int c, serve::FinishReason r, const Status&) {
            std::lock_guard<std::mutex> lock(mu);
            outcomes[i].reasons[c] = r;
            ++outcomes[i].done;
            if (--pending_choices == 0) cv.notify_all();
          }));
      ids.push_back(id);
    }
    return ids;
  }
  bool Wait(int seconds = 300) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(seconds), [&] { return pending_choices == 0; });
  }
};

serve::GenerationRequest Greedy(std::vector<int64_t> prompt, int64_t max_tokens) {
  serve::GenerationRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

StatusOr<std::unique_ptr<serve::BatchingBackend>> MakeBackend(const std::string& path, int threads,
                                                              int64_t kv_bytes, int64_t max_tokens_per_step = 512,
                                                              int speculative = 0) {
  KILN_ASSIGN_OR_RETURN(auto artifact, artifact::Artifact::Open(path));
  llm::PagedModelOptions mo;
  mo.threads = threads;
  mo.kv_cache_bytes = kv_bytes;
  KILN_ASSIGN_OR_RETURN(auto model, llm::PagedModel::Open(std::move(artifact), mo));
  serve::BatchingBackendOptions bo;
  bo.max_batched_tokens = max_tokens_per_step;
  bo.num_speculative_tokens = speculative;
  return serve::BatchingBackend::Create(std::move(model), bo);
}

std::string Diff(const std::vector<int64_t>& got, const std::vector<int64_t>& want) {
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    if (got[i] != want[i]) return "first difference at " + std::to_string(i);
  return got.size() == want.size() ? "" : "lengths " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
}

int Main(const std::string& path, int threads) {
  // Prompts of different lengths (ids from the vocabulary's middle).
  std::vector<std::vector<int64_t>> prompts;
  for (int p = 0; p < 4; ++p) {
    std::vector<int64_t> ids{1};
    for (int i = 0; i < 5 + 23 * p; ++i) ids.push_back(100 + (i * 37 + p * 11) % 1500);
    prompts.push_back(ids);
  }
  const int64_t max_tokens = 40;

  // Reference: the single-sequence Engine.
  llm::EngineOptions eo;
  eo.threads = threads;
  StatusOr<std::unique_ptr<llm::Engine>> engine = llm::Engine::Open(path, eo);
  if (!engine.ok()) return Report("open engine", false, engine.status().message()), 1;
  std::vector<std::vector<int64_t>> want;
  for (auto& p : prompts) {
    llm::GenerateParams gp;
    gp.max_tokens = max_tokens;
    gp.ignore_eos = true;
    StatusOr<llm::GenerateResult> r = (*engine)->Generate(p, gp);
    if (!r.ok()) return Report("engine generate", false, r.status().message()), 1;
    want.push_back(r->ids);
  }

  StatusOr<std::unique_ptr<serve::BatchingBackend>> backend = MakeBackend(path, threads, 0);
  if (!backend.ok()) return Report("open backend", false, backend.status().message()), 1;

  {  // alone
    bool ok = true;
    std::string why;
    for (size_t p = 0; p < prompts.size(); ++p) {
      Collector c;
      if (!c.SubmitAll(**backend, {Greedy(prompts[p], max_tokens)}).ok() || !c.Wait()) ok = false;
      std::string d = Diff(c.outcomes[0].ids[0], want[p]);
      if (!d.empty()) ok = false, why = "prompt " + std::to_string(p) + ": " + d;
    }
    Report("alone == engine greedy", ok, why);
  }

  std::vector<serve::GenerationRequest> many;
  for (int i = 0; i < 64; ++i) many.push_back(Greedy(prompts[i % 4], max_tokens));
  auto check_many = [&](const std::string& name, serve::BatchingBackend& b) {
    Collector c;
    auto t0 = std::chrono::steady_clock::now();
    StatusOr<std::vector<uint64_t>> ids = c.SubmitAll(b, many);
    if (!ids.ok()) return Report(name, false, ids.status().message());
    if (!c.Wait()) return Report(name, false, "timed out");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int bad = 0;
    std::string why;
    for (int i = 0; i < 64; ++i) {
      std::string d = Diff(c.outcomes[i].ids[0], want[i % 4]);
      if (!d.empty() && bad++ == 0) why = "request " + std::to_string(i) + ": " + d;
    }
    Report(name, bad == 0,
           bad ? std::to_string(bad) + " of 64 differ, " + why
               : "64 x " + std::to_string(max_tokens) + " ids identical, " + std::to_string(b.steps()) +
                     " steps, " + std::to_string(b.preemptions()) + " preemptions, " +
                     std::to_string(static_cast<int>(64 * max_tokens / secs)) + " tok/s");
  };
  check_many("batched 64 == alone", **backend);

  {  // speculation (prompt lookup) inside the batch: sequences speculate independently
    StatusOr<std::unique_ptr<serve::BatchingBackend>> spec = MakeBackend(path, threads, 0, 512, 4);
    if (!spec.ok()) return Report("open speculative backend", false, spec.status().message()), 1;
    check_many("batched 64 with n-gram speculation == alone", **spec);
    serve::BackendStats st = (*spec)->Stats();
    Report("speculation counters", st.spec_decode_draft_tokens_total > 0 &&
                                       st.spec_decode_accepted_tokens_total <= st.spec_decode_draft_tokens_total,
           std::to_string(st.spec_decode_accepted_tokens_total) + " of " +
               std::to_string(st.spec_decode_draft_tokens_total) + " proposed ids kept");
    (*spec)->Shutdown(/*drain=*/true);
    Report("every block free after speculation", (*spec)->model().blocks().NumBlocksInUse() == 0 &&
                                                     (*spec)->model().blocks().CheckInvariants().ok(), "");
  }

  {  // n > 1
    Collector c;
    serve::GenerationRequest g = Greedy(prompts[1], 24);
    g.n = 3;
    serve::GenerationRequest t = Greedy(prompts[2], 24);
    t.n = 3;
    t.sampler.temperature = 1.0;
    t.sampler.seed = 1234;
    std::vector<serve::GenerationRequest> singles;
    for (int i = 0; i < 3; ++i) {
      serve::GenerationRequest s = t;
      s.n = 1;
      s.sampler.seed = 1234 + i;
      singles.push_back(s);
    }
    std::vector<serve::GenerationRequest> all{g, t};
    all.insert(all.end(), singles.begin(), singles.end());
    bool ok = c.SubmitAll(**backend, all).ok() && c.Wait();
    std::vector<int64_t> greedy24(want[1].begin(), want[1].begin() + 24);
    bool same = ok;
    for (int i = 0; i < 3; ++i) same = same && c.outcomes[0].ids[i] == greedy24;
    bool seeded = ok;
    for (int i = 0; i < 3; ++i) seeded = seeded && c.outcomes[1].ids[i] == c.outcomes[2 + i].ids[0];
    bool differ = ok && c.outcomes[1].ids[0] != c.outcomes[1].ids[1];
    Report("n = 3 greedy: three copies of the greedy ids", same, "");
    Report("n = 3 sampled: choice i == a single request seeded seed + i, and choices differ", seeded && differ,
           seeded ? (differ ? "" : "choices 0 and 1 are equal") : "a choice differs from its single request");
  }

  {  // prefix cache
    serve::BackendStats before = (*backend)->Stats();
    Collector c;
    bool ok = c.SubmitAll(**backend, {Greedy(prompts[3], 4)}).ok() && c.Wait();
    serve::BackendStats after = (*backend)->Stats();
    const int64_t hits = after.prefix_cache_hits_total - before.prefix_cache_hits_total;
    Report("repeated prompt hits the prefix cache", ok && hits >= 16 &&
           c.outcomes[0].ids[0] == std::vector<int64_t>(want[3].begin(), want[3].begin() + 4),
           std::to_string(hits) + " of " + std::to_string(prompts[3].size()) + " prompt tokens cached");
  }

  {  // cancel
    Collector c;
    std::vector<serve::GenerationRequest> sixteen(16, Greedy(prompts[0], 400));
    StatusOr<std::vector<uint64_t>> ids = c.SubmitAll(**backend, sixteen);
    bool ok = ids.ok();
    if (ok) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      for (int i = 0; i < 16; i += 2) (*backend)->Cancel((*ids)[i]);
      ok = c.Wait();
    }
    int cancelled = 0;
    for (int i = 0; ok && i < 16; i += 2) cancelled += c.outcomes[i].reasons[0] == serve::FinishReason::kCancelled;
    Report("cancel ends requests with kCancelled", ok && cancelled == 8, std::to_string(cancelled) + " of 8");
  }
  (*backend)->Shutdown(/*drain=*/true);
  Report("every block free after all requests ended",
         (*backend)->model().blocks().NumBlocksInUse() == 0 && (*backend)->model().blocks().CheckInvariants().ok(),
         std::to_string((*backend)->model().blocks().NumBlocksInUse()) + " blocks in use");

  {  // preemption: room for one context plus a little
    const int64_t context = (*backend)->model().max_context();
    const int64_t bytes = (context + 64) * (*backend)->model().bytes_per_token();
    StatusOr<std::unique_ptr<serve::BatchingBackend>> small = MakeBackend(path, threads, bytes);
    if (!small.ok()) return Report("open small backend", false, small.status().message()), 1;
    // Long outputs so that the 64 sequences outgrow the pools.
    const int64_t long_tokens = 200;
    std::vector<serve::GenerationRequest> longs;
    for (int i = 0; i < 16; ++i) longs.push_back(Greedy(prompts[i % 4], long_tokens));
    std::vector<std::vector<int64_t>> want_long;
    for (auto& p : prompts) {
      llm::GenerateParams gp;
      gp.max_tokens = long_tokens;
      gp.ignore_eos = true;
      want_long.push_back((*engine)->Generate(p, gp)->ids);
    }
    Collector c;
    bool ok = c.SubmitAll(**small, longs).ok() && c.Wait(600);
    int bad = 0;
    for (int i = 0; ok && i < 16; ++i) bad += c.outcomes[i].ids[0] != want_long[i % 4];
    const int64_t pre = (*small)->preemptions();
    (*small)->Shutdown(true);
    Report("preempted (KV cache of one context) == alone", ok && bad == 0 && pre > 0,
           std::to_string(pre) + " preemptions, " + std::to_string(bad) + " of 16 differ");
    Report("every block free after preemptions", (*small)->model().blocks().NumBlocksInUse() == 0, "");
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: check_batching ARTIFACT.kiln [threads]\n");
    return 2;
  }
  return Main(argv[1], argc > 2 ? std::atoi(argv[2]) : 2);
}
