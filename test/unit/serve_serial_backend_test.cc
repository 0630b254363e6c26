//===- serve_serial_backend_test.cc - SerialBackend over a fake LLM --------===//
#include "runtime/serve/serial_backend.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "test/unit/llm_fake_model.h"

namespace kiln::serve {
namespace {

using kiln::testing::FakeLlmModel;
using kiln::testing::FakeLlmOptions;
using kiln::testing::FakeNextToken;
using namespace std::chrono_literals;

constexpr int64_t kVocab = 64;

std::unique_ptr<SerialBackend> MakeBackend(int64_t max_queue, std::string config = "") {
  FakeLlmOptions o;
  o.vocab = kVocab;
  if (!config.empty()) o.metadata.push_back({"llm.config", config});
  StatusOr<std::unique_ptr<artifact::Artifact>> artifact =
      artifact::Artifact::FromBytes(testing::BuildArtifact(FakeLlmModel(o)));
  EXPECT_TRUE(artifact.ok()) << artifact.status().message();
  if (!artifact.ok()) return nullptr;
  StatusOr<std::unique_ptr<llm::Engine>> engine = llm::Engine::Create(std::move(artifact).value(), {"cpu", 1});
  EXPECT_TRUE(engine.ok()) << engine.status().message();
  if (!engine.ok()) return nullptr;
  StatusOr<std::unique_ptr<SerialBackend>> backend = SerialBackend::Create(std::move(engine).value(), {max_queue});
  EXPECT_TRUE(backend.ok()) << backend.status().message();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

std::vector<int64_t> Greedy(std::vector<int64_t> context, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(FakeNextToken(context, kVocab));
    context.push_back(out.back());
  }
  return out;
}

/// Records what a request's callbacks deliver, in order, across threads.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, std::vector<int64_t>> ids;
  std::map<int, FinishReason> done;
  std::vector<std::pair<uint64_t, int>> order;  // (tag, choice) of on_done calls
  /// When set, on_token of this tag blocks until released (holds the worker).
  bool hold = false;
  bool holding = false;

  TokenCallback OnToken(uint64_t tag) {
    return [this, tag](int index, int64_t id) {
      std::unique_lock<std::mutex> lock(mu);
      ids[index].push_back(id);
      if (tag == 0 && hold) {
        holding = true;
        cv.notify_all();
        cv.wait(lock, [this] { return !hold; });
      }
    };
  }
  DoneCallback OnDone(uint64_t tag) {
    return [this, tag](int index, FinishReason reason, const Status&) {
      std::lock_guard<std::mutex> lock(mu);
      if (tag == 0) done[index] = reason;
      order.push_back({tag, index});
      cv.notify_all();
    };
  }
  void WaitHolding() {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [this] { return holding; }));
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    hold = false;
    cv.notify_all();
  }
  void WaitDone(size_t calls) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return order.size() >= calls; })) << order.size() << " of " << calls;
  }
};

GenerationRequest Request(std::vector<int64_t> prompt, int64_t max_tokens, int n = 1) {
  GenerationRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.n = n;
  return r;
}

TEST(SerialBackendTest, GeneratesGreedyIdsForEveryChoice) {
  auto backend = MakeBackend(8);
  ASSERT_TRUE(backend);
  Recorder rec;
  StatusOr<uint64_t> id = backend->Submit(Request({3, 5, 7}, 6, /*n=*/2), rec.OnToken(0), rec.OnDone(0));
  ASSERT_TRUE(id.ok()) << id.status().message();
  rec.WaitDone(2);
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.ids[0], Greedy({3, 5, 7}, 6));
  EXPECT_EQ(rec.ids[1], Greedy({3, 5, 7}, 6));  // greedy: the seed does not matter
  EXPECT_EQ(rec.done[0], FinishReason::kLength);
  EXPECT_EQ(rec.done[1], FinishReason::kLength);
  // Choices run one after another.
  EXPECT_EQ(rec.order, (std::vector<std::pair<uint64_t, int>>{{0, 0}, {0, 1}}));
}

TEST(SerialBackendTest, SampledChoicesUseSeedPlusIndex) {
  auto backend = MakeBackend(8);
  ASSERT_TRUE(backend);
  auto run = [&](uint64_t seed, int n) {
    Recorder rec;
    GenerationRequest r = Request({1, 2}, 8, n);
    r.sampler.temperature = 5.0;  // flat enough that seeds matter
    r.sampler.seed = seed;
    EXPECT_TRUE(backend->Submit(r, rec.OnToken(0), rec.OnDone(0)).ok());
    rec.WaitDone(n);
    std::lock_guard<std::mutex> lock(rec.mu);
    return rec.ids;
  };
  std::map<int, std::vector<int64_t>> two = run(100, 2);
  EXPECT_NE(two[0], two[1]);
  EXPECT_EQ(run(100, 1)[0], two[0]);
  EXPECT_EQ(run(101, 1)[0], two[1]);  // choice 1 of seed 100 is choice 0 of seed 101
}

TEST(SerialBackendTest, StopsAtEosWithoutDeliveringIt) {
  // Pick an EOS id the greedy path reaches at its third step.
  const std::vector<int64_t> path = Greedy({4, 9}, 3);
  auto backend = MakeBackend(8, StrCat(R"({"eos_token_id": )", path[2], "}"));
  ASSERT_TRUE(backend);
  Recorder rec;
  ASSERT_TRUE(backend->Submit(Request({4, 9}, 10), rec.OnToken(0), rec.OnDone(0)).ok());
  rec.WaitDone(1);
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.ids[0], (std::vector<int64_t>{path[0], path[1]}));
  EXPECT_EQ(rec.done[0], FinishReason::kEos);
}

TEST(SerialBackendTest, FifoQueueBoundAndStats) {
  auto backend = MakeBackend(/*max_queue=*/2);
  ASSERT_TRUE(backend);
  Recorder rec;
  rec.hold = true;
  ASSERT_TRUE(backend->Submit(Request({1}, 3), rec.OnToken(0), rec.OnDone(0)).ok());
  rec.WaitHolding();  // request 0 runs and holds the worker
  ASSERT_TRUE(backend->Submit(Request({2}, 2), rec.OnToken(1), rec.OnDone(1)).ok());
  ASSERT_TRUE(backend->Submit(Request({3}, 2), rec.OnToken(2), rec.OnDone(2)).ok());
  BackendStats stats = backend->Stats();
  EXPECT_EQ(stats.num_requests_running, 1);
  EXPECT_EQ(stats.num_requests_waiting, 2);
  EXPECT_EQ(stats.kv_cache_usage_ratio, 0);
  StatusOr<uint64_t> full = backend->Submit(Request({4}, 2), rec.OnToken(3), rec.OnDone(3));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  rec.Release();
  rec.WaitDone(3);
  {
    std::lock_guard<std::mutex> lock(rec.mu);
    EXPECT_EQ(rec.order, (std::vector<std::pair<uint64_t, int>>{{0, 0}, {1, 0}, {2, 0}}));
  }
  // Idle again, already when the last choice is reported: a client that has
  // its answer never sees its request still running.
  EXPECT_EQ(backend->Stats().num_requests_running, 0);
  EXPECT_EQ(backend->Stats().num_requests_waiting, 0);
}

TEST(SerialBackendTest, ZeroQueueTakesOnlyWhenIdle) {
  auto backend = MakeBackend(/*max_queue=*/0);
  ASSERT_TRUE(backend);
  Recorder rec;
  rec.hold = true;
  ASSERT_TRUE(backend->Submit(Request({1}, 3), rec.OnToken(0), rec.OnDone(0)).ok());
  rec.WaitHolding();
  EXPECT_EQ(backend->Submit(Request({2}, 2), rec.OnToken(1), rec.OnDone(1)).status().code(),
            StatusCode::kResourceExhausted);
  rec.Release();
  rec.WaitDone(1);
}

TEST(SerialBackendTest, CancelWaitingAndRunning) {
  auto backend = MakeBackend(8);
  ASSERT_TRUE(backend);
  Recorder rec;
  rec.hold = true;
  StatusOr<uint64_t> running = backend->Submit(Request({1}, 50, /*n=*/2), rec.OnToken(0), rec.OnDone(0));
  ASSERT_TRUE(running.ok());
  rec.WaitHolding();
  StatusOr<uint64_t> waiting = backend->Submit(Request({2}, 5, /*n=*/3), rec.OnToken(1), rec.OnDone(1));
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(backend->Stats().num_requests_waiting, 1);
  backend->Cancel(*waiting);
  EXPECT_EQ(backend->Stats().num_requests_waiting, 0);  // out of the queue at once
  backend->Cancel(*running);
  backend->Cancel(12345);  // unknown: ignored
  rec.Release();
  rec.WaitDone(5);  // 2 choices of the running request, 3 of the waiting one
  std::lock_guard<std::mutex> lock(rec.mu);
  // The running request stopped after the token it was holding on, and its
  // second choice never started.
  EXPECT_EQ(rec.ids[0].size(), 1u);
  EXPECT_EQ(rec.done[0], FinishReason::kCancelled);
  EXPECT_EQ(rec.done[1], FinishReason::kCancelled);
  int cancelled_waiting = 0;
  for (auto [tag, index] : rec.order) cancelled_waiting += tag == 1;
  EXPECT_EQ(cancelled_waiting, 3);
  EXPECT_EQ(rec.ids.count(1), 0u);  // no choice 1 ids: neither request got that far
}

TEST(SerialBackendTest, RejectsRequestsThatCanNeverRun) {
  auto backend = MakeBackend(8, R"({"max_position_embeddings": 16})");
  ASSERT_TRUE(backend);
  EXPECT_EQ(backend->max_context(), 16);
  Recorder rec;
  auto submit = [&](GenerationRequest r) { return backend->Submit(r, rec.OnToken(0), rec.OnDone(0)).status().code(); };
  EXPECT_EQ(submit(Request({}, 4)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request({1}, 0)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request({1}, 4, 0)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request(std::vector<int64_t>(10, 1), 7)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request({kVocab}, 2)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request({-1}, 2)), StatusCode::kInvalidArgument);
  EXPECT_EQ(submit(Request(std::vector<int64_t>(10, 1), 6)), StatusCode::kOk);
  rec.WaitDone(1);
}

TEST(SerialBackendTest, ShutdownCancelsOrDrains) {
  {
    auto backend = MakeBackend(8);
    ASSERT_TRUE(backend);
    Recorder rec;
    rec.hold = true;
    ASSERT_TRUE(backend->Submit(Request({1}, 50), rec.OnToken(0), rec.OnDone(0)).ok());
    rec.WaitHolding();
    ASSERT_TRUE(backend->Submit(Request({2}, 5), rec.OnToken(1), rec.OnDone(1)).ok());
    std::thread release([&] {
      std::this_thread::sleep_for(20ms);
      rec.Release();
    });
    backend->Shutdown(/*drain=*/false);
    release.join();
    std::lock_guard<std::mutex> lock(rec.mu);
    EXPECT_EQ(rec.done[0], FinishReason::kCancelled);
    EXPECT_EQ(rec.order.size(), 2u);
    EXPECT_EQ(backend->Submit(Request({1}, 2), rec.OnToken(2), rec.OnDone(2)).status().code(),
              StatusCode::kUnavailable);
    backend->Shutdown(/*drain=*/false);  // idempotent
  }
  {
    auto backend = MakeBackend(8);
    ASSERT_TRUE(backend);
    Recorder rec;
    ASSERT_TRUE(backend->Submit(Request({1}, 5), rec.OnToken(0), rec.OnDone(0)).ok());
    ASSERT_TRUE(backend->Submit(Request({2}, 5), rec.OnToken(1), rec.OnDone(1)).ok());
    backend->Shutdown(/*drain=*/true);
    std::lock_guard<std::mutex> lock(rec.mu);
    EXPECT_EQ(rec.done[0], FinishReason::kLength);
    EXPECT_EQ(rec.order.size(), 2u);
  }
}

}  // namespace
}  // namespace kiln::serve
