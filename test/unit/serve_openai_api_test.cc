//===- serve_openai_api_test.cc - Request checks, responses, SSE, stops ----===//
#include "runtime/serve/openai_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/serve/stop_matcher.h"

namespace kiln::serve {
namespace {

using nlohmann::json;

StatusOr<CompletionRequest> Completion(std::string body) { return ParseCompletionRequest(body, /*chat=*/false); }
StatusOr<CompletionRequest> Chat(std::string body) { return ParseCompletionRequest(body, /*chat=*/true); }

/// The request is refused as a bad request (400) whose message mentions `what`.
void ExpectBad(const StatusOr<CompletionRequest>& r, const std::string& what) {
  ASSERT_FALSE(r.ok()) << "accepted; expected an error about " << what;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_EQ(ApiErrorOf(r.status()).http_status, 400);
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

TEST(ParseCompletionTest, ReadsEveryField) {
  StatusOr<CompletionRequest> r = Completion(R"({
      "model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 4,
      "seed": 11, "stop": ["a", "b"], "n": 3, "stream": true, "stream_options": {"include_usage": true},
      "ignore_eos": true, "frequency_penalty": 0, "user": "ignored"})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->chat);
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(std::get<std::string>(r->prompt), "hi");
  EXPECT_EQ(r->max_tokens, 7);
  EXPECT_EQ(r->temperature, 0.5);
  EXPECT_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->top_k, 4);
  EXPECT_EQ(r->seed, 11u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->n, 3);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->ignore_eos);
}

TEST(ParseCompletionTest, DefaultsAndNulls) {
  StatusOr<CompletionRequest> r =
      Completion(R"({"model": "m", "prompt": "hi", "max_tokens": null, "stop": null, "seed": null})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->max_tokens);
  EXPECT_EQ(r->temperature, 1.0);
  EXPECT_EQ(r->top_p, 1.0);
  EXPECT_EQ(r->top_k, 0);
  EXPECT_FALSE(r->seed);
  EXPECT_TRUE(r->stop.empty());
  EXPECT_EQ(r->n, 1);
  EXPECT_FALSE(r->stream);
}

TEST(ParseCompletionTest, PromptForms) {
  auto prompt_of = [](const std::string& p) { return Completion(R"({"model": "m", "prompt": )" + p + "}"); };
  StatusOr<CompletionRequest> r = prompt_of(R"(["one string"])");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<std::string>(r->prompt), "one string");
  r = prompt_of("[1, 2, 3]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<std::vector<int64_t>>(r->prompt), (std::vector<int64_t>{1, 2, 3}));
  r = prompt_of("[[4, 5]]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<std::vector<int64_t>>(r->prompt), (std::vector<int64_t>{4, 5}));
  r = Completion(R"({"model": "m", "prompt": "x", "top_k": -1, "seed": -3})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->top_k, 0);
  EXPECT_EQ(r->seed, static_cast<uint64_t>(-3));
}

TEST(ParseCompletionTest, EveryBadRequest) {
  // Not JSON, not an object, not UTF-8.
  ExpectBad(Completion("{bad"), "not valid JSON");
  ExpectBad(Completion(""), "not valid JSON");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x"} trailing)"), "not valid JSON");
  ExpectBad(Completion("[1, 2]"), "JSON object");
  ExpectBad(Completion("\"text\""), "JSON object");
  ExpectBad(Completion("{\"model\": \"m\", \"prompt\": \"\xff\xfe\"}"), "UTF-8");
  ExpectBad(Completion("{\"model\": \"m\", \"prompt\": \"\xc3\"}"), "UTF-8");  // truncated sequence
  ExpectBad(Completion(R"({"model": "m", "prompt": "\ud800"})"), "not valid JSON");  // lone surrogate escape
  // Missing fields.
  ExpectBad(Completion(R"({"prompt": "x"})"), "'model' is required");
  ExpectBad(Completion(R"({"model": "m"})"), "'prompt' is required");
  ExpectBad(Chat(R"({"model": "m"})"), "'messages' is required");
  // Wrong types.
  ExpectBad(Completion(R"({"model": 3, "prompt": "x"})"), "'model' must be a string");
  ExpectBad(Completion(R"({"model": "m", "prompt": 5})"), "'prompt'");
  ExpectBad(Completion(R"({"model": "m", "prompt": {"a": 1}})"), "'prompt'");
  ExpectBad(Completion(R"({"model": "m", "prompt": []})"), "empty");
  ExpectBad(Completion(R"({"model": "m", "prompt": [[]]})"), "empty");
  ExpectBad(Completion(R"({"model": "m", "prompt": ["a", "b"]})"), "one prompt");
  ExpectBad(Completion(R"({"model": "m", "prompt": [1, "b"]})"), "integer token ids");
  ExpectBad(Completion(R"({"model": "m", "prompt": [1.5]})"), "'prompt'");
  ExpectBad(Completion(R"({"model": "m", "prompt": [18446744073709551615]})"), "out of range");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "max_tokens": "5"})"), "'max_tokens' must be an integer");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "max_tokens": 5.5})"), "'max_tokens' must be an integer");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "temperature": "hot"})"), "'temperature' must be a number");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "top_p": []})"), "'top_p' must be a number");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "top_k": 1.5})"), "'top_k' must be an integer");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "seed": "s"})"), "'seed' must be an integer");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stop": 3})"), "'stop'");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stop": ["a", 3]})"), "'stop'");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "n": "2"})"), "'n' must be an integer");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stream": "yes"})"), "'stream' must be a boolean");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "ignore_eos": 1})"), "'ignore_eos' must be a boolean");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stream": true, "stream_options": 1})"), "'stream_options'");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}})"),
            "only allowed");
  ExpectBad(Chat(R"({"model": "m", "messages": "hi"})"), "'messages' must be a list");
  ExpectBad(Chat(R"({"model": "m", "messages": []})"), "'messages' is empty");
  ExpectBad(Chat(R"({"model": "m", "messages": ["hi"]})"), "'messages[0]' must be an object");
  ExpectBad(Chat(R"({"model": "m", "messages": [{"content": "hi"}]})"), "'messages[0].role'");
  ExpectBad(Chat(R"({"model": "m", "messages": [{"role": "", "content": "hi"}]})"), "'messages[0].role'");
  ExpectBad(Chat(R"({"model": "m", "messages": [{"role": "user", "content": 3}]})"), "'messages[0].content'");
  ExpectBad(Chat(R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
            "'messages[0].content'");
  // Values out of range.
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "max_tokens": 0})"), "'max_tokens' must be at least 1");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "max_tokens": -4})"), "'max_tokens' must be at least 1");
  ExpectBad(Chat(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})"),
            "'max_tokens' must be at least 1");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "temperature": -0.1})"), "'temperature' must be >= 0");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "top_p": 0})"), "'top_p' must be in (0, 1]");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "top_p": 1.5})"), "'top_p' must be in (0, 1]");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "top_k": -2})"), "'top_k' must be >= -1");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "n": 0})"), "'n' must be in");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "n": 1000})"), "'n' must be in");
  ExpectBad(Completion(R"({"model": "m", "prompt": "x", "stop": ["1","2","3","4","5","6","7","8","9","10","11",
                                                                    "12","13","14","15","16","17"]})"),
            "at most");
}

TEST(ParseCompletionTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = R"({"model": "m", "prompt": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectBad(Completion(deep), "'prompt'");
}

TEST(ParseCompletionTest, ChatMessagesAndMaxCompletionTokens) {
  StatusOr<CompletionRequest> r = Chat(R"({"model": "m", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null}],
      "max_tokens": 5, "max_completion_tokens": 9})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[1].content, "Hi there");
  EXPECT_EQ(r->messages[2].content, "");
  EXPECT_EQ(r->max_tokens, 9);
  EXPECT_EQ(ApplyChatTemplate(r->messages),
            "<|system|>\nBe brief.\n<|user|>\nHi there\n<|assistant|>\n\n<|assistant|>\n");
}

TEST(ChatTemplateTest, ParsesAndApplies) {
  StatusOr<ChatTemplate> t = ChatTemplate::Parse(
      R"({"message": "{role}: {content}\n", "roles": {"system": "[SYS]{content}[/SYS]"}, "generation_prompt": "bot:"})");
  ASSERT_TRUE(t.ok()) << t.status().message();
  // {role}/{content} inside message text are not expanded again.
  std::vector<ChatMessage> m = {{"system", "Be {role}."}, {"user", "Hi {content}"}};
  EXPECT_EQ(t->Apply(m), "[SYS]Be {role}.[/SYS]user: Hi {content}\nbot:");
  // Keys not given keep the defaults.
  StatusOr<ChatTemplate> partial = ChatTemplate::Parse(R"({"generation_prompt": ">"})");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->Apply({{"user", "x"}}), "<|user|>\nx\n>");
  EXPECT_EQ(ChatTemplate{}.Apply({{"user", "x"}}), ApplyChatTemplate({{"user", "x"}}));
  for (const char* bad : {"[]", "{", R"({"message": 3})", R"({"roles": {"user": 1}})", R"({"roles": []})",
                          R"({"jinja": "{{ messages }}"})"})
    EXPECT_EQ(ChatTemplate::Parse(bad).status().code(), StatusCode::kInvalidArgument) << bad;
}

/// Encodes each byte as its value + 10; BOS is 1.
class ByteTokenizer : public llm::Tokenizer {
 public:
  explicit ByteTokenizer(bool bos) {
    llm::SpecialTokens special;
    if (bos) special.bos_id = 1;
    set_special(special);
  }
  StatusOr<std::vector<int64_t>> Encode(std::string_view text) const override {
    std::vector<int64_t> ids;
    for (unsigned char c : text) ids.push_back(c + 10);
    return ids;
  }
  StatusOr<std::string> Decode(std::span<const int64_t> ids) const override {
    std::string s;
    for (int64_t id : ids) s += static_cast<char>(id - 10);
    return s;
  }
  int64_t vocab_size() const override { return 266; }
};

TEST(PromptIdsTest, EncodesWithBosAndChecksIds) {
  ByteTokenizer tok(/*bos=*/true);
  const ModelLimits limits{64, 266};
  StatusOr<std::vector<int64_t>> ids = PromptIds(*Completion(R"({"model": "m", "prompt": "ab"})"), &tok, limits);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int64_t>{1, 'a' + 10, 'b' + 10}));
  // Chat goes through the template.
  ids = PromptIds(*Chat(R"({"model": "m", "messages": [{"role": "u", "content": "x"}]})"), &tok, limits);
  ASSERT_TRUE(ids.ok());
  std::vector<int64_t> want = {1};
  for (unsigned char c : std::string("<|u|>\nx\n<|assistant|>\n")) want.push_back(c + 10);
  EXPECT_EQ(*ids, want);
  // Ids are used as given (no BOS added) but must be in the vocabulary.
  ids = PromptIds(*Completion(R"({"model": "m", "prompt": [5, 265]})"), &tok, limits);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int64_t>{5, 265}));
  for (const char* bad : {R"([266])", R"([-1])"}) {
    ids = PromptIds(*Completion(std::string(R"({"model": "m", "prompt": )") + bad + "}"), &tok, limits);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ApiErrorOf(ids.status()).http_status, 400);
  }
  // An empty text prompt without BOS has no ids.
  ByteTokenizer no_bos(/*bos=*/false);
  ids = PromptIds(*Completion(R"({"model": "m", "prompt": ""})"), &no_bos, limits);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ApiErrorOf(ids.status()).http_status, 400);
  // Without a tokenizer only ids work.
  ids = PromptIds(*Completion(R"({"model": "m", "prompt": "ab"})"), nullptr, limits);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ApiErrorOf(ids.status()).http_status, 400);
  EXPECT_TRUE(PromptIds(*Completion(R"({"model": "m", "prompt": [3]})"), nullptr, limits).ok());
}

TEST(MakeGenerationRequestTest, ContextLimitsAndDefaults) {
  const ModelLimits limits{10, 100};
  const std::vector<int64_t> four = {1, 2, 3, 4};
  // Prompt as long as the context: no room to generate.
  StatusOr<GenerationRequest> g =
      MakeGenerationRequest(*Completion(R"({"model": "m", "prompt": "x"})"), std::vector<int64_t>(10, 1), limits, 0);
  ASSERT_FALSE(g.ok());
  ApiError e = ApiErrorOf(g.status());
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  // max_tokens beyond what is left.
  g = MakeGenerationRequest(*Completion(R"({"model": "m", "prompt": "x", "max_tokens": 7})"), four, limits, 0);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(ApiErrorOf(g.status()).http_status, 400);
  // Exactly what is left is fine.
  g = MakeGenerationRequest(*Completion(R"({"model": "m", "prompt": "x", "max_tokens": 6, "seed": 5, "n": 2,
                                           "temperature": 0, "top_k": 3, "top_p": 0.5, "ignore_eos": true})"),
                            four, limits, 99);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->max_tokens, 6);
  EXPECT_EQ(g->prompt_ids, four);
  EXPECT_EQ(g->n, 2);
  EXPECT_EQ(g->sampler.seed, 5u);
  EXPECT_EQ(g->sampler.temperature, 0);
  EXPECT_EQ(g->sampler.top_k, 3);
  EXPECT_EQ(g->sampler.top_p, 0.5);
  EXPECT_TRUE(g->ignore_eos);
  // Defaults: completions 16 cut to the room, chat the whole room; the seed.
  g = MakeGenerationRequest(*Completion(R"({"model": "m", "prompt": "x"})"), four, {100, 100}, 99);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->max_tokens, 16);
  EXPECT_EQ(g->sampler.seed, 99u);
  g = MakeGenerationRequest(*Completion(R"({"model": "m", "prompt": "x"})"), four, limits, 0);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->max_tokens, 6);
  g = MakeGenerationRequest(*Chat(R"({"model": "m", "messages": [{"role": "u", "content": "x"}]})"), four, {100, 100},
                            0);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->max_tokens, 96);
}

TEST(TokenizeRequestTest, ParsesAndRejects) {
  StatusOr<TokenizeRequest> t = ParseTokenizeRequest(R"({"prompt": "hi", "add_special_tokens": false})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->prompt, "hi");
  EXPECT_FALSE(t->add_special_tokens);
  EXPECT_FALSE(ParseTokenizeRequest(R"({})").ok());
  EXPECT_FALSE(ParseTokenizeRequest(R"({"prompt": 1})").ok());
  EXPECT_FALSE(ParseTokenizeRequest("nope").ok());
  StatusOr<DetokenizeRequest> d = ParseDetokenizeRequest(R"({"tokens": [1, 2]})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->tokens, (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(ParseDetokenizeRequest(R"({})").ok());
  EXPECT_FALSE(ParseDetokenizeRequest(R"({"tokens": "1 2"})").ok());
  EXPECT_FALSE(ParseDetokenizeRequest(R"({"tokens": [1, "2"]})").ok());
}

TEST(ResponseTest, CompletionAndChatShapes) {
  ResponseHeader h{false, "cmpl-1", 123, "m"};
  json c = json::parse(CompletionResponseJson(h, {{"hello", "stop"}, {"x", "length"}}, {3, 4}));
  EXPECT_EQ(c["id"], "cmpl-1");
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["created"], 123);
  EXPECT_EQ(c["model"], "m");
  ASSERT_EQ(c["choices"].size(), 2u);
  EXPECT_EQ(c["choices"][0]["index"], 0);
  EXPECT_EQ(c["choices"][0]["text"], "hello");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(c["choices"][1]["index"], 1);
  EXPECT_EQ(c["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(c["usage"], json({{"prompt_tokens", 3}, {"completion_tokens", 4}, {"total_tokens", 7}}));

  h.chat = true;
  json chat = json::parse(CompletionResponseJson(h, {{"hi", "stop"}}, {1, 1}));
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"], json({{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_FALSE(chat["choices"][0].contains("text"));

  json role = json::parse(CompletionChunkJson(h, 1, "", std::nullopt, true));
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["index"], 1);
  EXPECT_EQ(role["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  json delta = json::parse(CompletionChunkJson(h, 0, "tok", std::nullopt));
  EXPECT_EQ(delta["choices"][0]["delta"], json({{"content", "tok"}}));
  json last = json::parse(CompletionChunkJson(h, 0, "", "length"));
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");

  h.chat = false;
  json chunk = json::parse(CompletionChunkJson(h, 0, "a\nb", std::nullopt));
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["choices"][0]["text"], "a\nb");
  json usage = json::parse(UsageChunkJson(h, {2, 5}));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);

  json models = json::parse(ModelListJson("m", 5, 1024));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "m");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(json::parse(TokenizeResponseJson({1, 2}, 8)), json({{"tokens", {1, 2}}, {"count", 2}, {"max_model_len", 8}}));
  EXPECT_EQ(json::parse(DetokenizeResponseJson("hi")), json({{"prompt", "hi"}}));
}

TEST(SseTest, FramingIsOneDataLinePerEvent) {
  EXPECT_EQ(SseEvent(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  // Text with newlines is escaped inside the JSON: the event stays one line.
  std::string event = SseEvent(CompletionChunkJson({false, "cmpl-1", 1, "m"}, 0, "line1\nline2\r\n", std::nullopt));
  ASSERT_TRUE(event.starts_with("data: "));
  ASSERT_TRUE(event.ends_with("\n\n"));
  EXPECT_EQ(event.find('\n'), event.size() - 2);
  EXPECT_EQ(event.find('\r'), std::string::npos);
  EXPECT_EQ(json::parse(event.substr(6))["choices"][0]["text"], "line1\nline2\r\n");
}

TEST(ErrorTest, BodyShapeAndStatusMapping) {
  json body = json::parse(ErrorBodyJson(MakeApiError(429, "full")));
  EXPECT_EQ(body, json({{"error", {{"message", "full"}, {"type", "rate_limit_error"}, {"code", "queue_full"}}}}));
  EXPECT_EQ(ApiErrorOf(InvalidArgumentError("x")).http_status, 400);
  EXPECT_EQ(ApiErrorOf(OutOfRangeError("x")).http_status, 400);
  EXPECT_EQ(ApiErrorOf(NotFoundError("x")).http_status, 404);
  EXPECT_EQ(ApiErrorOf(ResourceExhaustedError("x")).http_status, 429);
  EXPECT_EQ(ApiErrorOf(UnavailableError("x")).http_status, 503);
  EXPECT_EQ(ApiErrorOf(InternalError("x")).http_status, 500);
  for (int status : {400, 401, 404, 405, 413, 429, 500, 503}) {
    json e = json::parse(ErrorBodyJson(MakeApiError(status, "m")))["error"];
    EXPECT_EQ(e.size(), 3u);
    EXPECT_TRUE(e["message"].is_string());
    EXPECT_TRUE(e["type"].is_string() && !e["type"].get<std::string>().empty());
    EXPECT_TRUE(e["code"].is_string() && !e["code"].get<std::string>().empty());
  }
  // Messages with bytes that are not UTF-8 still make valid JSON.
  EXPECT_NO_THROW(json::parse(ErrorBodyJson(MakeApiError(400, "bad \xff byte"))));
}

// ----- StopMatcher ------------------------------------------------------------

/// Feeds `pieces` and returns what comes out (+ Flush when no stop matched).
std::pair<std::string, bool> RunStops(std::vector<std::string> stops, const std::vector<std::string>& pieces,
                                      std::vector<std::string>* outputs = nullptr) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const std::string& p : pieces) {
    StopMatcher::Result r = m.Push(p);
    out += r.text;
    if (outputs) outputs->push_back(r.text);
    if (r.stopped) return {out, true};
  }
  out += m.Flush();
  return {out, false};
}

TEST(StopMatcherTest, NoStopsPassesEverythingAtOnce) {
  std::vector<std::string> outs;
  EXPECT_EQ(RunStops({}, {"ab", "cd"}, &outs), std::make_pair(std::string("abcd"), false));
  EXPECT_EQ(outs, (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(RunStops({""}, {"ab"}), std::make_pair(std::string("ab"), false));  // empty stops ignored
}

TEST(StopMatcherTest, CutsAtTheStopWithinOnePiece) {
  EXPECT_EQ(RunStops({"STOP"}, {"hello STOP world"}), std::make_pair(std::string("hello "), true));
  EXPECT_EQ(RunStops({"x"}, {"x"}), std::make_pair(std::string(""), true));
}

TEST(StopMatcherTest, StopSpanningPiecesIsHeldBackThenCut) {
  std::vector<std::string> outs;
  auto r = RunStops({"STOP"}, {"ab S", "T", "O", "P tail"}, &outs);
  EXPECT_EQ(r, std::make_pair(std::string("ab "), true));
  // "S", "ST", "STO" were held back, never sent.
  EXPECT_EQ(outs, (std::vector<std::string>{"ab ", "", "", ""}));
}

TEST(StopMatcherTest, ReleasesHeldTextWhenItCannotBeAStop) {
  std::vector<std::string> outs;
  auto r = RunStops({"STOP"}, {"ab ST", "Xy"}, &outs);
  EXPECT_EQ(r, std::make_pair(std::string("ab STXy"), false));
  EXPECT_EQ(outs, (std::vector<std::string>{"ab ", "STXy"}));
  // Held text at the end comes out on Flush.
  outs.clear();
  r = RunStops({"STOP"}, {"ab ST"}, &outs);
  EXPECT_EQ(r, std::make_pair(std::string("ab ST"), false));
}

TEST(StopMatcherTest, TheStopCompleteFirstWinsHoweverTextIsCut) {
  EXPECT_EQ(RunStops({"world", "lo w"}, {"hello world"}), std::make_pair(std::string("hel"), true));
  // "b" is complete before "abc" is, whether "bc" comes in one piece or two.
  EXPECT_EQ(RunStops({"abc", "b"}, {"a", "bc"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(RunStops({"abc", "b"}, {"a", "b", "c"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(RunStops({"abc", "b"}, {"abc"}), std::make_pair(std::string("a"), true));
  // Ending together: the longer (earlier) one.
  EXPECT_EQ(RunStops({"c", "abc"}, {"xabc"}), std::make_pair(std::string("x"), true));
  // A held prefix of one stop that turns into another.
  EXPECT_EQ(RunStops({"abc", "bd"}, {"ab", "d"}), std::make_pair(std::string("a"), true));
  // A repeated-prefix stop: "aab" after "aaab".
  EXPECT_EQ(RunStops({"aab"}, {"a", "a", "a", "b"}), std::make_pair(std::string("a"), true));
}

TEST(StopMatcherTest, NothingAfterTheStop) {
  StopMatcher m({"."});
  EXPECT_TRUE(m.Push("one. two").stopped);
  StopMatcher::Result r = m.Push("more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, MultiByteStopsCutOnCharacterBoundaries) {
  // "é" is C3 A9; the text arrives one character at a time.
  EXPECT_EQ(RunStops({"été"}, {"un ", "é", "t", "é", " chaud"}), std::make_pair(std::string("un "), true));
  EXPECT_EQ(RunStops({"é"}, {"caf", "é!"}), std::make_pair(std::string("caf"), true));
}

}  // namespace
}  // namespace kiln::serve
