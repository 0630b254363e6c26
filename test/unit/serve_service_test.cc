//===- serve_service_test.cc - OpenAiService over HTTP with a scripted backend ===//
//
// A real HttpServer + OpenAiService on a loopback port, a Beast client, and
// a Backend whose tokens are scripted per choice, so that the HTTP side is
// checked exactly: choices ending at different times, stop strings with n >
// 1, EOS in usage, errors from Submit and from generation, cancellation when
// the client goes away, /health before the model is there.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "runtime/serve/http_server.h"
#include "runtime/serve/openai_service.h"

namespace kiln::serve {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

/// Text <-> ids: each byte is its value + 10; BOS 1, EOS 2.
class ByteTokenizer : public llm::Tokenizer {
 public:
  ByteTokenizer() { set_special({1, {2}}); }
  StatusOr<std::vector<int64_t>> Encode(std::string_view text) const override {
    std::vector<int64_t> ids;
    for (unsigned char c : text) ids.push_back(c + 10);
    return ids;
  }
  StatusOr<std::string> Decode(std::span<const int64_t> ids) const override {
    std::string s;
    for (int64_t id : ids)
      if (id >= 10) s += static_cast<char>(id - 10);
    return s;
  }
  int64_t vocab_size() const override { return 266; }
};

std::vector<int64_t> Ids(std::string_view text) {
  std::vector<int64_t> ids;
  for (unsigned char c : text) ids.push_back(c + 10);
  return ids;
}

/// Per choice: the ids to deliver, then how the choice ends.
struct Script {
  std::vector<std::vector<int64_t>> ids;
  std::vector<FinishReason> finish;
  /// Wait for Cancel before ending (a long generation).
  bool wait_for_cancel = false;
  Status submit_status = OkStatus();
};

/// A Backend that plays a Script on its own thread.
class ScriptedBackend final : public Backend {
 public:
  explicit ScriptedBackend(Script script) : script_(std::move(script)) {}
  ~ScriptedBackend() override { Shutdown(false); }

  StatusOr<uint64_t> Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) override {
    if (!script_.submit_status.ok()) return script_.submit_status;
    std::lock_guard<std::mutex> lock(mu_);
    last_request_ = request;
    const uint64_t id = ++next_id_;
    threads_.emplace_back([this, id, n = request.n, on_token, on_done] {
      for (int i = 0; i < n; ++i)
        for (int64_t t : script_.ids[i]) on_token(i, t);
      if (script_.wait_for_cancel) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return cancelled_ == id || stopping_; });
        for (int i = 0; i < n; ++i) on_done(i, FinishReason::kCancelled, OkStatus());
        return;
      }
      for (int i = 0; i < n; ++i)
        on_done(i, script_.finish[i],
                script_.finish[i] == FinishReason::kError ? InternalError("the device caught fire") : OkStatus());
    });
    return id;
  }
  void Cancel(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = id;
    cancels_.push_back(id);
    cv_.notify_all();
  }
  BackendStats Stats() const override { return {}; }
  int64_t max_context() const override { return 64; }
  void Shutdown(bool) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  std::vector<uint64_t> cancels() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancels_;
  }
  GenerationRequest last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_;
  }
  bool WaitCancelled(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !cancels_.empty(); });
  }

 private:
  Script script_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  uint64_t next_id_ = 0;
  uint64_t cancelled_ = 0;
  bool stopping_ = false;
  std::vector<uint64_t> cancels_;
  GenerationRequest last_request_;
};

struct Reply {
  int status = 0;
  std::string body;
  std::string header(http::field f) const { return fields.count(f) ? fields.at(f) : ""; }
  std::map<http::field, std::string> fields;
  json Json() const { return json::parse(body); }
};

/// A server on a loopback port; the io_context runs on its own thread.
class ServiceTest : public ::testing::Test {
 protected:
  void Start(ServiceOptions options = {}) {
    options.model_name = "m";
    service_ = *OpenAiService::Create(io_, options);
    HttpServerOptions server_options;
    server_options.port = 0;
    server_ = *HttpServer::Create(io_, server_options, service_.get());
    server_->Start();
    thread_ = std::thread([this] {
      auto guard = net::make_work_guard(io_);
      io_.run();
    });
  }
  /// Runs `fn` on the io thread and waits for it.
  void OnIo(std::function<void()> fn) {
    std::promise<void> done;
    net::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
  ScriptedBackend* SetModel(Script script) {
    auto backend = std::make_unique<ScriptedBackend>(std::move(script));
    ScriptedBackend* raw = backend.get();
    OnIo([&] {
      ServedModel model;
      model.tokenizer = std::make_unique<ByteTokenizer>();
      model.backend = std::move(backend);
      model.vocab_size = 266;
      service_->SetModel(std::move(model));
    });
    return raw;
  }
  void TearDown() override {
    if (!service_) return;
    OnIo([&] {
      server_->Stop();
      service_->Shutdown();
    });
    io_.stop();
    thread_.join();
    server_.reset();
    service_.reset();
  }

  tcp::socket Connect() {
    tcp::socket socket(client_io_);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    return socket;
  }
  Reply Request(http::verb method, std::string target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    tcp::socket socket = Connect();
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "localhost");
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    Reply r{static_cast<int>(res.result_int()), res.body(), {}};
    for (const auto& f : res) r.fields[f.name()] = std::string(f.value());
    return r;
  }
  Reply Post(std::string target, json body) { return Request(http::verb::post, target, body.dump()); }

  /// The `data:` payloads of an SSE body.
  static std::vector<std::string> Events(const std::string& body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find("\n\n", pos);
      EXPECT_NE(end, std::string::npos) << "unterminated event";
      if (end == std::string::npos) break;
      std::string event = body.substr(pos, end - pos);
      EXPECT_TRUE(event.starts_with("data: ")) << event;
      EXPECT_EQ(event.find('\n'), std::string::npos) << "an event of several lines";
      out.push_back(event.substr(6));
      pos = end + 2;
    }
    return out;
  }

  net::io_context io_;
  net::io_context client_io_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(ServiceTest, HealthIsUnavailableUntilTheModelIsSet) {
  Start();
  Reply r = Request(http::verb::get, "/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Json()["error"]["code"], "model_loading");
  EXPECT_EQ(Post("/v1/completions", {{"model", "m"}, {"prompt", "x"}}).status, 503);
  EXPECT_EQ(Request(http::verb::get, "/metrics").status, 200);  // metrics while loading
  SetModel({});
  EXPECT_EQ(Request(http::verb::get, "/health").status, 200);
}

TEST_F(ServiceTest, ChoicesEndIndependentlyAndStopStringsCutOne) {
  Start();
  Script s;
  s.ids = {Ids("ab.cd"), Ids("xyz")};
  s.finish = {FinishReason::kLength, FinishReason::kEos};
  ScriptedBackend* backend = SetModel(s);
  Reply r = Post("/v1/completions", {{"model", "m"}, {"prompt", "hi"}, {"n", 2}, {"stop", "."}, {"max_tokens", 5},
                                     {"seed", 7}, {"temperature", 0.5}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["choices"][0]["text"], "ab");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["text"], "xyz");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "stop");  // EOS
  // Prompt "hi" with BOS; choice 0 counts up to the stop ("a", "b", "."),
  // choice 1 its 3 ids and the EOS.
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3 + 4);
  GenerationRequest g = backend->last_request();
  EXPECT_EQ(g.prompt_ids, (std::vector<int64_t>{1, 'h' + 10, 'i' + 10}));
  EXPECT_EQ(g.n, 2);
  EXPECT_EQ(g.max_tokens, 5);
  EXPECT_EQ(g.sampler.seed, 7u);
  EXPECT_EQ(g.sampler.temperature, 0.5);
}

TEST_F(ServiceTest, StreamHoldsBackAPossibleStopAndEndsWithDone) {
  Start();
  Script s;
  s.ids = {Ids("abSTcSTOPzz")};
  s.finish = {FinishReason::kLength};
  SetModel(s);
  Reply r = Post("/v1/chat/completions", {{"model", "m"},
                                          {"messages", {{{"role", "user"}, {"content", "q"}}}},
                                          {"stop", {"STOP"}},
                                          {"stream", true},
                                          {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header(http::field::content_type), "text/event-stream");
  std::vector<std::string> events = Events(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  std::string text;
  std::string finish;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    json chunk = json::parse(events[i]);
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content")) {
      std::string piece = choice["delta"]["content"];
      // Nothing of the stop string is ever sent, even a part of it.
      EXPECT_TRUE(piece.find('S') == std::string::npos || piece.find("ST") != std::string::npos) << piece;
      text += piece;
    }
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(text, "abSTc");
  EXPECT_EQ(finish, "stop");
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 9);  // a b S T c S T O P
}

TEST_F(ServiceTest, ClientGoneCancelsTheRequest) {
  Start();
  Script s;
  s.ids = {Ids("abc")};
  s.wait_for_cancel = true;
  ScriptedBackend* backend = SetModel(s);
  for (bool stream : {true, false}) {
    tcp::socket socket = Connect();
    http::request<http::string_body> req(http::verb::post, "/v1/completions", 11);
    req.body() = json({{"model", "m"}, {"prompt", "x"}, {"stream", stream}}).dump();
    req.prepare_payload();
    http::write(socket, req);
    if (stream) {
      // Read until some text has come, then go away.
      std::string got;
      char buf[512];
      while (got.find("\"text\":\"c\"") == std::string::npos) got.append(buf, socket.read_some(net::buffer(buf)));
    }
    socket.close();
    ASSERT_TRUE(backend->WaitCancelled(5s)) << "stream: " << stream;
    EXPECT_EQ(backend->cancels().size(), 1u);
    backend = SetModel(s);  // a fresh backend for the next round
  }
}

TEST_F(ServiceTest, BackendErrorsBecomeStatusCodes) {
  Start();
  Script full;
  full.submit_status = ResourceExhaustedError("queue full");
  SetModel(full);
  Reply r = Post("/v1/completions", {{"model", "m"}, {"prompt", "x"}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["error"]["code"], "queue_full");

  Script broken;
  broken.ids = {Ids("a")};
  broken.finish = {FinishReason::kError};
  SetModel(broken);
  r = Post("/v1/completions", {{"model", "m"}, {"prompt", "x"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.Json()["error"]["type"], "server_error");
  EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("caught fire"), std::string::npos);
  r = Post("/v1/completions", {{"model", "m"}, {"prompt", "x"}, {"stream", true}});
  EXPECT_EQ(r.status, 200);  // the stream had started
  std::vector<std::string> events = Events(r.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events[events.size() - 2])["error"]["type"], "server_error");
}

TEST_F(ServiceTest, ApiKeyGuardsAllButHealthAndMetrics) {
  ServiceOptions options;
  options.api_key = "k1";
  Start(options);
  Script s;
  s.ids = {Ids("a")};
  s.finish = {FinishReason::kLength};
  SetModel(s);
  const std::string body = json({{"model", "m"}, {"prompt", "x"}}).dump();
  Reply r = Request(http::verb::post, "/v1/completions", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header(http::field::www_authenticate), "Bearer");
  EXPECT_EQ(Request(http::verb::post, "/v1/completions", body, {{"Authorization", "Bearer k2"}}).status, 401);
  EXPECT_EQ(Request(http::verb::post, "/v1/completions", body, {{"Authorization", "Bearer k1x"}}).status, 401);
  EXPECT_EQ(Request(http::verb::post, "/v1/completions", body, {{"Authorization", "Bearer k1"}}).status, 200);
  EXPECT_EQ(Request(http::verb::get, "/health").status, 200);
  EXPECT_EQ(Request(http::verb::get, "/metrics").status, 200);
  // Routing comes first: an unknown path is 404, a wrong method 405.
  EXPECT_EQ(Request(http::verb::get, "/v2/x").status, 404);
  EXPECT_EQ(Request(http::verb::get, "/v1/completions").status, 405);
}

TEST_F(ServiceTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start();
  Script s;
  s.ids = {Ids("ok")};
  s.finish = {FinishReason::kLength};
  SetModel(s);
  tcp::socket socket = Connect();
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req(http::verb::post, "/v1/completions", 11);
    req.body() = json({{"model", "m"}, {"prompt", "x"}, {"stream", i == 1}}).dump();
    req.prepare_payload();
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_NE(res.body().find(i == 1 ? "data: [DONE]" : "\"text\":\"ok\""), std::string::npos) << res.body();
  }
}

}  // namespace
}  // namespace kiln::serve
