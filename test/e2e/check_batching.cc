//===- check_batching.cc - Continuous batching on a real compiled LLM -------===//
//
//   check_batching ARTIFACT.kiln [THREADS] [DRAFT_ARTIFACT.kiln...]
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
// With DRAFT_ARTIFACTs (the same model compiled with --draft or
// --speculative=layer-skip:N, so with a draft_forward), speculation by the
// draft inside the batch, for each:
//   draft 64    the 64 with draft proposals == alone; counters; blocks free;
//               again with each sequence adapting its k
//   sampled     at temperature 1 a seeded request gives the same ids alone
//               and batched with 15 others (each sequence's draft, RNG and
//               acceptance are its own)
//   preempted   (the first) a KV cache of one context with the draft:
//               identical outputs
//   chi-square  (the first draft artifact) at temperature 1, the 2nd and 3rd ids (the first ones the
//               draft proposes and the target verifies, k = 3) follow the
//               target's distribution given the ids before them, through
//               the Engine and through the backend (Pearson over the id's
//               rank in the target's row: ranks 0..6 and the rest, 7 df,
//               significance 0.001)
// Prints one line per check and "N passed, N failed"; exit 1 on failure.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/llm/engine.h"
#include "runtime/llm/paged_model.h"
#include "runtime/llm/speculative.h"
#include "runtime/serve/batching_backend.h"

using namespace kiln;

namespace {

int passed = 0, failed = 0;
std::string report_prefix;  // which draft artifact the checks are about
void Report(const std::string& name, bool ok, const std::string& detail) {
  std::printf("%s %s%s%s%s\n", ok ? "PASS" : "FAIL", report_prefix.c_str(), name.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
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
                                                              int speculative = 0,
                                                              llm::Proposer proposer = llm::Proposer::kNgram,
                                                              int64_t speculative_max_batch = 0,
                                                              bool adaptive = false, float min_probability = 0) {
  KILN_ASSIGN_OR_RETURN(auto artifact, artifact::Artifact::Open(path));
  llm::PagedModelOptions mo;
  mo.threads = threads;
  mo.kv_cache_bytes = kv_bytes;
  KILN_ASSIGN_OR_RETURN(auto model, llm::PagedModel::Open(std::move(artifact), mo));
  serve::BatchingBackendOptions bo;
  bo.max_batched_tokens = max_tokens_per_step;
  bo.num_speculative_tokens = speculative;
  bo.proposer = proposer;
  bo.speculative_max_batch = speculative_max_batch;
  bo.adaptive_speculation = adaptive;
  bo.draft_min_probability = min_probability;
  return serve::BatchingBackend::Create(std::move(model), bo);
}

std::string Diff(const std::vector<int64_t>& got, const std::vector<int64_t>& want) {
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    if (got[i] != want[i]) return "first difference at " + std::to_string(i);
  return got.size() == want.size() ? "" : "lengths " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
}

/// The single-sequence Engine's greedy ids (ignore_eos) for each prompt.
StatusOr<std::vector<std::vector<int64_t>>> EngineGreedy(llm::Engine& engine,
                                                        const std::vector<std::vector<int64_t>>& prompts,
                                                        int64_t tokens) {
  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : prompts) {
    llm::GenerateParams gp;
    gp.max_tokens = tokens;
    gp.ignore_eos = true;
    KILN_ASSIGN_OR_RETURN(llm::GenerateResult r, engine.Generate(p, gp));
    ids.push_back(std::move(r.ids));
  }
  return ids;
}

/// What `count` greedy requests submitted at once gave against `want`.
struct GreedyRun {
  bool ok = false;    // submitted and finished in time
  int bad = 0;        // requests whose ids differ from their prompt's `want`
  std::string why;    // the first difference, or what went wrong
  double seconds = 0;
};

/// Submits `count` greedy requests of `tokens` ids (request i on prompt
/// i % prompts.size()) at once and compares each with want[i % size].
GreedyRun RunGreedy(serve::Backend& backend, const std::vector<std::vector<int64_t>>& prompts, int count,
                    int64_t tokens, const std::vector<std::vector<int64_t>>& want, int wait_seconds) {
  std::vector<serve::GenerationRequest> reqs;
  for (int i = 0; i < count; ++i) reqs.push_back(Greedy(prompts[i % prompts.size()], tokens));
  GreedyRun run;
  Collector c;
  auto t0 = std::chrono::steady_clock::now();
  StatusOr<std::vector<uint64_t>> ids = c.SubmitAll(backend, reqs);
  if (!ids.ok()) return run.why = std::string(ids.status().message()), run;
  if (!c.Wait(wait_seconds)) return run.why = "timed out", run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.ok = true;
  for (int i = 0; i < count; ++i) {
    std::string d = Diff(c.outcomes[i].ids[0], want[i % want.size()]);
    if (!d.empty() && run.bad++ == 0) run.why = "request " + std::to_string(i) + ": " + d;
  }
  return run;
}

/// Goodness of fit of sampled ids to the target's distributions: each id
/// falls in the cell of its rank in the target's row for the context before
/// it (ranks 0..kCells-2, then the rest), whose probability under the target
/// is known per sample; Pearson's statistic over the summed expectations.
class RankChiSquare {
 public:
  static constexpr int kCells = 8;
  static constexpr double kCritical = 24.3219;  // chi-square, 7 df, alpha 0.001

  void Add(std::span<const float> p, int64_t id) {
    std::vector<float> sorted(p.begin(), p.end());
    std::partial_sort(sorted.begin(), sorted.begin() + kCells - 1, sorted.end(), std::greater<float>());
    double top = 0;
    for (int c = 0; c < kCells - 1; ++c) expected_[c] += sorted[c], top += sorted[c];
    expected_[kCells - 1] += std::max(0.0, 1.0 - top);
    int64_t rank = 0;  // ids more likely than `id` (ties: the smaller id first)
    for (size_t y = 0; y < p.size(); ++y)
      rank += p[y] > p[id] || (p[y] == p[id] && static_cast<int64_t>(y) < id);
    observed_[std::min<int64_t>(rank, kCells - 1)] += 1;
  }
  double Statistic() const {
    double chi2 = 0;
    for (int c = 0; c < kCells; ++c)
      if (expected_[c] > 0) chi2 += (observed_[c] - expected_[c]) * (observed_[c] - expected_[c]) / expected_[c];
    return chi2;
  }
  std::string Summary() const {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "statistic %.2f (critical %.2f)", Statistic(), kCritical);
    return buf;
  }

 private:
  double expected_[kCells] = {};
  double observed_[kCells] = {};
};

/// The target's sampling distributions at temperature 1 after each context,
/// computed once per context with the engine's Prefill.
class TargetRows {
 public:
  explicit TargetRows(llm::Engine& engine) : engine_(engine) {}
  StatusOr<std::span<const float>> After(const std::vector<int64_t>& context) {
    auto it = rows_.find(context);
    if (it == rows_.end()) {
      KILN_ASSIGN_OR_RETURN(std::vector<float> logits, engine_.Prefill(context));
      llm::SamplerParams sp;
      sp.temperature = 1.0;
      it = rows_.emplace(context, llm::ProbsFromLogits(logits, sp)).first;
    }
    return std::span<const float>(it->second);
  }

 private:
  llm::Engine& engine_;
  std::map<std::vector<int64_t>, std::vector<float>> rows_;
};

/// Adds a sample's 2nd and 3rd ids after `prompt` to `second` and `third`.
Status AddSample(TargetRows& rows, const std::vector<int64_t>& prompt, const std::vector<int64_t>& ids,
                 RankChiSquare& second, RankChiSquare& third) {
  if (ids.size() < 3) return InternalError("a sample has fewer than 3 ids");
  std::vector<int64_t> context = prompt;
  context.push_back(ids[0]);
  KILN_ASSIGN_OR_RETURN(std::span<const float> p2, rows.After(context));
  second.Add(p2, ids[1]);
  context.push_back(ids[1]);
  KILN_ASSIGN_OR_RETURN(std::span<const float> p3, rows.After(context));
  third.Add(p3, ids[2]);
  return OkStatus();
}

/// Temperature 1 with the draft: the speculated ids follow the target.
void CheckDraftDistribution(const std::string& path, int threads, const std::vector<int64_t>& prompt) {
  constexpr int kSamples = 4000;
  llm::EngineOptions eo;
  eo.threads = threads;
  StatusOr<std::unique_ptr<llm::Engine>> engine = llm::Engine::Open(path, eo);
  StatusOr<std::unique_ptr<llm::Engine>> reference = llm::Engine::Open(path, eo);
  if (!engine.ok() || !reference.ok()) return Report("open the draft artifact twice", false, "");
  TargetRows rows(**reference);
  serve::GenerationRequest r = Greedy(prompt, 5);  // 1 id, then k = 3 proposals
  r.sampler.temperature = 1.0;
  {
    RankChiSquare second, third;
    int64_t drafted = 0, accepted = 0;
    Status st = OkStatus();
    for (int i = 0; i < kSamples && st.ok(); ++i) {
      llm::GenerateParams gp;
      gp.max_tokens = r.max_tokens;
      gp.ignore_eos = true;
      gp.sampler = r.sampler;
      gp.sampler.seed = 5000 + i;
      gp.num_speculative_tokens = 3;
      gp.proposer = llm::Proposer::kDraft;
      StatusOr<llm::GenerateResult> g = (*engine)->Generate(prompt, gp);
      st = g.ok() ? AddSample(rows, prompt, g->ids, second, third) : g.status();
      if (g.ok()) drafted += g->draft_tokens, accepted += g->accepted_tokens;
    }
    Report("chi-square, Engine with the draft: 2nd id follows the target",
           st.ok() && drafted > 0 && second.Statistic() < RankChiSquare::kCritical,
           st.ok() ? second.Summary() + ", " + std::to_string(accepted) + " of " + std::to_string(drafted) + " kept"
                   : st.message());
    Report("chi-square, Engine with the draft: 3rd id follows the target",
           st.ok() && third.Statistic() < RankChiSquare::kCritical, third.Summary());
  }
  {
    StatusOr<std::unique_ptr<serve::BatchingBackend>> b =
        MakeBackend(path, threads, 0, 512, 3, llm::Proposer::kDraft);
    if (!b.ok()) return Report("open backend for the chi-square", false, b.status().message());
    RankChiSquare second, third;
    Status st = OkStatus();
    for (int start = 0; start < kSamples && st.ok(); start += 500) {
      std::vector<serve::GenerationRequest> reqs;
      for (int i = start; i < std::min(kSamples, start + 500); ++i) {
        serve::GenerationRequest q = r;
        q.sampler.seed = 9000 + i;
        reqs.push_back(q);
      }
      Collector c;
      if (!c.SubmitAll(**b, reqs).ok() || !c.Wait(600)) st = InternalError("submitting or waiting failed");
      for (size_t i = 0; i < reqs.size() && st.ok(); ++i) st = AddSample(rows, prompt, c.outcomes[i].ids[0], second, third);
    }
    serve::BackendStats stats = (*b)->Stats();
    Report("chi-square, batched with the draft: 2nd id follows the target",
           st.ok() && stats.spec_decode_draft_tokens_total > 0 && second.Statistic() < RankChiSquare::kCritical,
           st.ok() ? second.Summary() + ", " + std::to_string(stats.spec_decode_accepted_tokens_total) + " of " +
                         std::to_string(stats.spec_decode_draft_tokens_total) + " kept"
                   : st.message());
    Report("chi-square, batched with the draft: 3rd id follows the target",
           st.ok() && third.Statistic() < RankChiSquare::kCritical, third.Summary());
  }
}

/// Speculation by the artifact's draft_forward inside the batch.
void CheckDraft(const std::string& path, int threads, const std::vector<std::vector<int64_t>>& prompts,
                int64_t max_tokens, bool preemption) {
  llm::EngineOptions eo;
  eo.threads = threads;
  StatusOr<std::unique_ptr<llm::Engine>> engine = llm::Engine::Open(path, eo);
  if (!engine.ok()) return Report("open draft artifact", false, engine.status().message());
  StatusOr<std::vector<std::vector<int64_t>>> want = EngineGreedy(**engine, prompts, max_tokens);
  if (!want.ok()) return Report("engine generate with the draft artifact", false, want.status().message());

  StatusOr<std::unique_ptr<serve::BatchingBackend>> b =
      MakeBackend(path, threads, 0, 512, 4, llm::Proposer::kDraft);
  if (!b.ok()) return Report("open backend with the draft", false, b.status().message());
  {
    GreedyRun run = RunGreedy(**b, prompts, 64, max_tokens, *want, 600);
    serve::BackendStats st = (*b)->Stats();
    Report("batched 64 with draft speculation == alone", run.ok && run.bad == 0,
           std::to_string(run.bad) + " of 64 differ, " + std::to_string((*b)->steps()) + " steps " + run.why);
    Report("draft speculation counters", st.spec_decode_draft_tokens_total > 0 &&
                                             st.spec_decode_accepted_tokens_total > 0 &&
                                             st.spec_decode_accepted_tokens_total <= st.spec_decode_draft_tokens_total,
           std::to_string(st.spec_decode_accepted_tokens_total) + " of " +
               std::to_string(st.spec_decode_draft_tokens_total) + " drafted ids kept");
  }
  {  // adaptive k per sequence, drafts stopping after an unsure id: still the same ids
    StatusOr<std::unique_ptr<serve::BatchingBackend>> adaptive =
        MakeBackend(path, threads, 0, 512, 4, llm::Proposer::kDraft, 0, true, 0.5f);
    if (!adaptive.ok()) return Report("open adaptive backend", false, adaptive.status().message());
    GreedyRun run = RunGreedy(**adaptive, prompts, 64, max_tokens, *want, 600);
    serve::BackendStats st = (*adaptive)->Stats();
    (*adaptive)->Shutdown(/*drain=*/true);
    Report("batched 64 with adaptive draft speculation, stopping below p 0.5 == alone", run.ok && run.bad == 0 &&
               (*adaptive)->model().blocks().NumBlocksInUse() == 0,
           std::to_string(run.bad) + " of 64 differ, " + std::to_string(st.spec_decode_accepted_tokens_total) +
               " of " + std::to_string(st.spec_decode_draft_tokens_total) + " drafted ids kept " + run.why);
  }
  {  // sampled: alone == batched
    serve::GenerationRequest t = Greedy(prompts[2], 32);
    t.sampler.temperature = 1.0;
    t.sampler.seed = 77;
    Collector alone;
    bool ok = alone.SubmitAll(**b, {t}).ok() && alone.Wait();
    std::vector<serve::GenerationRequest> crowd;
    for (int i = 0; i < 16; ++i) {
      serve::GenerationRequest r = t;
      r.prompt_ids = prompts[i % 4];
      r.sampler.seed = i == 5 ? 77 : 1000 + i;
      if (i == 5) r.prompt_ids = prompts[2];
      crowd.push_back(r);
    }
    Collector batched;
    ok = ok && batched.SubmitAll(**b, crowd).ok() && batched.Wait();
    Report("sampled with the draft: alone == batched with 15 others",
           ok && alone.outcomes[0].ids[0] == batched.outcomes[5].ids[0] && alone.outcomes[0].ids[0].size() == 32, "");
  }
  (*b)->Shutdown(/*drain=*/true);
  Report("every block free after draft speculation",
         (*b)->model().blocks().NumBlocksInUse() == 0 && (*b)->model().blocks().CheckInvariants().ok(), "");

  if (preemption) {  // preemption with the draft: room for one context plus a little
    const int64_t context = (*b)->model().max_context();
    const int64_t bytes = (context + 64) * (*b)->model().bytes_per_token();
    StatusOr<std::unique_ptr<serve::BatchingBackend>> small =
        MakeBackend(path, threads, bytes, 512, 4, llm::Proposer::kDraft);
    if (!small.ok()) return Report("open small backend with the draft", false, small.status().message());
    const int64_t long_tokens = 200;
    StatusOr<std::vector<std::vector<int64_t>>> want_long = EngineGreedy(**engine, prompts, long_tokens);
    if (!want_long.ok()) return Report("engine generate, long", false, want_long.status().message());
    GreedyRun run = RunGreedy(**small, prompts, 16, long_tokens, *want_long, 600);
    const int64_t pre = (*small)->preemptions();
    (*small)->Shutdown(true);
    Report("preempted with draft speculation == alone", run.ok && run.bad == 0 && pre > 0,
           std::to_string(pre) + " preemptions, " + std::to_string(run.bad) + " of 16 differ " + run.why);
    Report("every block free after preemptions with the draft",
           (*small)->model().blocks().NumBlocksInUse() == 0 && (*small)->model().blocks().CheckInvariants().ok(), "");
  }
}

int Main(const std::string& path, int threads, const std::vector<std::string>& draft_paths) {
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
  StatusOr<std::vector<std::vector<int64_t>>> reference = EngineGreedy(**engine, prompts, max_tokens);
  if (!reference.ok()) return Report("engine generate", false, reference.status().message()), 1;
  const std::vector<std::vector<int64_t>>& want = *reference;

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

  auto check_many = [&](const std::string& name, serve::BatchingBackend& b) {
    GreedyRun run = RunGreedy(b, prompts, 64, max_tokens, want, 300);
    if (!run.ok) return Report(name, false, run.why);
    Report(name, run.bad == 0,
           run.bad ? std::to_string(run.bad) + " of 64 differ, " + run.why
                   : "64 x " + std::to_string(max_tokens) + " ids identical, " + std::to_string(b.steps()) +
                         " steps, " + std::to_string(b.preemptions()) + " preemptions, " +
                         std::to_string(static_cast<int>(64 * max_tokens / run.seconds)) + " tok/s");
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
    // Speculation only in steps with at most 8 decoding sequences: the 64
    // still decode the same, and fewer ids are proposed.
    StatusOr<std::unique_ptr<serve::BatchingBackend>> capped =
        MakeBackend(path, threads, 0, 512, 4, llm::Proposer::kNgram, 8);
    if (!capped.ok()) return Report("open capped speculative backend", false, capped.status().message()), 1;
    check_many("batched 64, speculation only at <= 8 decoding, == alone", **capped);
    serve::BackendStats cs = (*capped)->Stats();
    Report("speculation capped by batch size proposes less",
           cs.spec_decode_draft_tokens_total < st.spec_decode_draft_tokens_total,
           std::to_string(cs.spec_decode_draft_tokens_total) + " vs " +
               std::to_string(st.spec_decode_draft_tokens_total) + " proposed ids");
    (*capped)->Shutdown(/*drain=*/true);
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
    StatusOr<std::vector<std::vector<int64_t>>> want_long = EngineGreedy(**engine, prompts, long_tokens);
    if (!want_long.ok()) return Report("engine generate, long", false, want_long.status().message()), 1;
    GreedyRun run = RunGreedy(**small, prompts, 16, long_tokens, *want_long, 600);
    const int64_t pre = (*small)->preemptions();
    (*small)->Shutdown(true);
    Report("preempted (KV cache of one context) == alone", run.ok && run.bad == 0 && pre > 0,
           std::to_string(pre) + " preemptions, " + std::to_string(run.bad) + " of 16 differ " + run.why);
    Report("every block free after preemptions", (*small)->model().blocks().NumBlocksInUse() == 0, "");
  }
  for (size_t i = 0; i < draft_paths.size(); ++i) {
    const std::string& draft = draft_paths[i];
    report_prefix = "[" + draft.substr(draft.find_last_of('/') + 1) + "] ";
    // Preemption and the distribution once (they take most of the time).
    CheckDraft(draft, threads, prompts, max_tokens, /*preemption=*/i == 0);
    if (i == 0) CheckDraftDistribution(draft, threads, prompts[0]);
  }
  report_prefix.clear();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: check_batching ARTIFACT.kiln [THREADS] [DRAFT_ARTIFACT.kiln...]\n");
    return 2;
  }
  return Main(argv[1], argc > 2 ? std::atoi(argv[2]) : 2, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
}
