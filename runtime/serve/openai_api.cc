//===- openai_api.cc - OpenAI-compatible request and response bodies -------===//
#include "runtime/serve/openai_api.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/llm/utf8.h"

namespace kiln::serve {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

/// Parses `body` as one JSON object; errors say what is wrong in one line.
StatusOr<json> ParseObject(std::string_view body) {
  if (!llm::IsValidUtf8(body)) return InvalidArgumentError("the request body is not valid UTF-8");
  json root;
  try {
    root = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
    std::string what = e.what();
    if (size_t close = what.find("] "); what.starts_with("[json.exception.") && close != std::string::npos)
      what.erase(0, close + 2);
    return InvalidArgumentError(StrCat("the request body is not valid JSON: ", llm::Utf8Lossy(what)));
  }
  if (!root.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  return root;
}

/// The field, or nullptr when absent or null (optional fields may be null).
const json* Field(const json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return nullptr;
  return &*it;
}

Status TypeError(const char* key, const char* expected, const json& got) {
  return InvalidArgumentError(StrCat("'", key, "' must be ", expected, ", got ", got.type_name()));
}

Status ReadString(const json& root, const char* key, std::optional<std::string>& out) {
  const json* v = Field(root, key);
  if (!v) return OkStatus();
  if (!v->is_string()) return TypeError(key, "a string", *v);
  out = v->get<std::string>();
  return OkStatus();
}

Status ReadBool(const json& root, const char* key, bool& out) {
  const json* v = Field(root, key);
  if (!v) return OkStatus();
  if (!v->is_boolean()) return TypeError(key, "a boolean", *v);
  out = v->get<bool>();
  return OkStatus();
}

Status ReadInt(const json& root, const char* key, std::optional<int64_t>& out) {
  const json* v = Field(root, key);
  if (!v) return OkStatus();
  if (!v->is_number_integer()) return TypeError(key, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return InvalidArgumentError(StrCat("'", key, "' is too large"));
  out = v->get<int64_t>();
  return OkStatus();
}

Status ReadNumber(const json& root, const char* key, double& out) {
  const json* v = Field(root, key);
  if (!v) return OkStatus();
  if (!v->is_number()) return TypeError(key, "a number", *v);
  out = v->get<double>();
  if (!std::isfinite(out)) return InvalidArgumentError(StrCat("'", key, "' must be finite"));
  return OkStatus();
}

/// A list of integer ids, each in int64 range.
StatusOr<std::vector<int64_t>> ReadIds(const json& list, const char* key) {
  std::vector<int64_t> ids;
  ids.reserve(list.size());
  for (const json& v : list) {
    if (!v.is_number_integer()) return InvalidArgumentError(StrCat("'", key, "' must hold integer token ids"));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return InvalidArgumentError(StrCat("'", key, "' holds an id out of range"));
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

/// prompt: "text" | ["text"] | [1, 2, 3] | [[1, 2, 3]]
Status ReadPrompt(const json& root, CompletionRequest& out) {
  const json* v = Field(root, "prompt");
  if (!v) return InvalidArgumentError("'prompt' is required");
  if (v->is_string()) {
    out.prompt = v->get<std::string>();
    return OkStatus();
  }
  if (!v->is_array()) return TypeError("prompt", "a string, a list of one string, or a list of token ids", *v);
  if (v->empty()) return InvalidArgumentError("'prompt' is an empty list");
  const json& first = v->front();
  if (first.is_number_integer()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ReadIds(*v, "prompt"));
    out.prompt = std::move(ids);
    return OkStatus();
  }
  if (v->size() != 1) return InvalidArgumentError("'prompt' may hold only one prompt per request");
  if (first.is_string()) {
    out.prompt = first.get<std::string>();
    return OkStatus();
  }
  if (first.is_array()) {
    if (first.empty()) return InvalidArgumentError("'prompt' holds an empty list of token ids");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ReadIds(first, "prompt"));
    out.prompt = std::move(ids);
    return OkStatus();
  }
  return TypeError("prompt", "a string, a list of one string, or a list of token ids", *v);
}

/// content: "text" | [{"type": "text", "text": "..."}, ...] | null
StatusOr<std::string> ReadContent(const json& message, size_t index) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string text;
    for (const json& part : *it) {
      auto type = part.is_object() ? part.find("type") : part.end();
      auto body = part.is_object() ? part.find("text") : part.end();
      if (!part.is_object() || type == part.end() || *type != "text" || body == part.end() || !body->is_string())
        return InvalidArgumentError(
            StrCat("'messages[", index, "].content' parts must be {\"type\": \"text\", \"text\": string}"));
      text += body->get<std::string>();
    }
    return text;
  }
  return InvalidArgumentError(StrCat("'messages[", index, "].content' must be a string or a list of text parts"));
}

Status ReadMessages(const json& root, CompletionRequest& out) {
  const json* v = Field(root, "messages");
  if (!v) return InvalidArgumentError("'messages' is required");
  if (!v->is_array()) return TypeError("messages", "a list", *v);
  if (v->empty()) return InvalidArgumentError("'messages' is empty");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    if (!m.is_object()) return InvalidArgumentError(StrCat("'messages[", i, "]' must be an object"));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
      return InvalidArgumentError(StrCat("'messages[", i, "].role' must be a non-empty string"));
    KILN_ASSIGN_OR_RETURN(std::string content, ReadContent(m, i));
    out.messages.push_back({role->get<std::string>(), std::move(content)});
  }
  return OkStatus();
}

Status ReadStop(const json& root, CompletionRequest& out) {
  const json* v = Field(root, "stop");
  if (!v) return OkStatus();
  if (v->is_string()) {
    out.stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) return InvalidArgumentError("'stop' must be a string or a list of strings");
      out.stop.push_back(s.get<std::string>());
    }
  } else {
    return TypeError("stop", "a string or a list of strings", *v);
  }
  if (out.stop.size() > kMaxStopStrings)
    return InvalidArgumentError(StrCat("'stop' may hold at most ", kMaxStopStrings, " strings"));
  return OkStatus();
}

std::string Dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

ordered_json HeaderJson(const ResponseHeader& header, std::string_view object) {
  return ordered_json{{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

ordered_json UsageJson(const Usage& usage) {
  return ordered_json{{"prompt_tokens", usage.prompt_tokens},
                      {"completion_tokens", usage.completion_tokens},
                      {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

}  // namespace

StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat) {
  KILN_ASSIGN_OR_RETURN(json root, ParseObject(body));
  CompletionRequest r;
  r.chat = chat;

  std::optional<std::string> model;
  KILN_RETURN_IF_ERROR(ReadString(root, "model", model));
  if (!model) return InvalidArgumentError("'model' is required");
  r.model = std::move(*model);

  if (chat) {
    KILN_RETURN_IF_ERROR(ReadMessages(root, r));
  } else {
    KILN_RETURN_IF_ERROR(ReadPrompt(root, r));
  }

  // Chat clients now send max_completion_tokens; it wins over max_tokens.
  KILN_RETURN_IF_ERROR(ReadInt(root, "max_tokens", r.max_tokens));
  if (chat) {
    std::optional<int64_t> completion;
    KILN_RETURN_IF_ERROR(ReadInt(root, "max_completion_tokens", completion));
    if (completion) r.max_tokens = completion;
  }
  if (r.max_tokens && *r.max_tokens <= 0)
    return InvalidArgumentError(StrCat("'max_tokens' must be at least 1, got ", *r.max_tokens));

  KILN_RETURN_IF_ERROR(ReadNumber(root, "temperature", r.temperature));
  if (r.temperature < 0) return InvalidArgumentError(StrCat("'temperature' must be >= 0, got ", r.temperature));
  KILN_RETURN_IF_ERROR(ReadNumber(root, "top_p", r.top_p));
  if (!(r.top_p > 0 && r.top_p <= 1)) return InvalidArgumentError(StrCat("'top_p' must be in (0, 1], got ", r.top_p));
  std::optional<int64_t> top_k;
  KILN_RETURN_IF_ERROR(ReadInt(root, "top_k", top_k));
  if (top_k) {
    if (*top_k < -1) return InvalidArgumentError(StrCat("'top_k' must be >= -1 (-1 or 0: no limit), got ", *top_k));
    r.top_k = *top_k < 0 ? 0 : *top_k;
  }
  if (const json* seed = Field(root, "seed")) {
    if (!seed->is_number_integer()) return TypeError("seed", "an integer", *seed);
    // Any 64-bit pattern is a seed: negative values wrap.
    r.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  }
  KILN_RETURN_IF_ERROR(ReadStop(root, r));
  std::optional<int64_t> n;
  KILN_RETURN_IF_ERROR(ReadInt(root, "n", n));
  if (n) {
    if (*n < 1 || *n > kMaxChoices)
      return InvalidArgumentError(StrCat("'n' must be in [1, ", kMaxChoices, "], got ", *n));
    r.n = static_cast<int>(*n);
  }
  KILN_RETURN_IF_ERROR(ReadBool(root, "stream", r.stream));
  KILN_RETURN_IF_ERROR(ReadBool(root, "ignore_eos", r.ignore_eos));
  if (const json* options = Field(root, "stream_options")) {
    if (!options->is_object()) return TypeError("stream_options", "an object", *options);
    if (!r.stream) return InvalidArgumentError("'stream_options' is only allowed with \"stream\": true");
    KILN_RETURN_IF_ERROR(ReadBool(*options, "include_usage", r.include_usage));
  }
  return r;
}

namespace {
/// `format` with {role} and {content} replaced, left to right in one pass.
std::string Fill(std::string_view format, const ChatMessage& m) {
  std::string out;
  for (size_t i = 0; i < format.size();) {
    if (format.substr(i, 6) == "{role}") {
      out += m.role, i += 6;
    } else if (format.substr(i, 9) == "{content}") {
      out += m.content, i += 9;
    } else {
      out += format[i++];
    }
  }
  return out;
}
}  // namespace

StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("chat template: not a JSON object");
  ChatTemplate t;
  for (auto& [key, value] : j.items()) {
    if (key == "message" || key == "generation_prompt") {
      if (!value.is_string()) return InvalidArgumentError(StrCat("chat template: '", key, "' must be a string"));
      (key == "message" ? t.message : t.generation_prompt) = value.get<std::string>();
    } else if (key == "roles") {
      if (!value.is_object()) return InvalidArgumentError("chat template: 'roles' must be an object");
      for (auto& [role, format] : value.items()) {
        if (!format.is_string())
          return InvalidArgumentError(StrCat("chat template: role '", role, "' must map to a string"));
        t.roles[role] = format.get<std::string>();
      }
    } else {
      return InvalidArgumentError(StrCat("chat template: unknown key '", key,
                                         "' (known: message, roles, generation_prompt)"));
    }
  }
  return t;
}

std::string ChatTemplate::Apply(const std::vector<ChatMessage>& messages) const {
  std::string text;
  for (const ChatMessage& m : messages) {
    auto it = roles.find(m.role);
    text += Fill(it == roles.end() ? message : it->second, m);
  }
  return text + generation_prompt;
}

std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages) { return ChatTemplate{}.Apply(messages); }

StatusOr<std::vector<int64_t>> PromptIds(const CompletionRequest& request, const llm::Tokenizer* tokenizer,
                                         const ModelLimits& limits, const ChatTemplate& chat_template) {
  if (!request.chat) {
    if (const auto* ids = std::get_if<std::vector<int64_t>>(&request.prompt)) {
      KILN_RETURN_IF_ERROR(CheckTokenIds(*ids, limits.vocab_size, "prompt"));
      return *ids;
    }
  }
  if (!tokenizer)
    return InvalidArgumentError(request.chat ? "the model has no tokenizer: chat is not available"
                                             : "the model has no tokenizer: give the prompt as token ids");
  const std::string text = request.chat ? chat_template.Apply(request.messages) : std::get<std::string>(request.prompt);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ids, tokenizer->Encode(text));
  ids = tokenizer->WithBos(std::move(ids));
  if (ids.empty()) return InvalidArgumentError("the prompt is empty");
  return ids;
}

Status CheckTokenIds(std::span<const int64_t> ids, int64_t vocab_size, std::string_view field) {
  for (int64_t id : ids)
    if (id < 0 || id >= vocab_size)
      return InvalidArgumentError(
          StrCat("'", field, "' holds token id ", id, ", outside the vocabulary [0, ", vocab_size, ")"));
  return OkStatus();
}

StatusOr<GenerationRequest> MakeGenerationRequest(const CompletionRequest& request, std::vector<int64_t> prompt_ids,
                                                  const ModelLimits& limits, uint64_t default_seed) {
  const int64_t prompt = static_cast<int64_t>(prompt_ids.size());
  if (prompt == 0) return InvalidArgumentError("the prompt is empty");
  const int64_t room = limits.max_context - prompt;
  if (room <= 0)
    return OutOfRangeError(StrCat("the prompt has ", prompt, " tokens but the model's context holds ",
                                  limits.max_context, " (prompt and completion together)"));
  GenerationRequest out;
  if (request.max_tokens) {
    if (*request.max_tokens > room)
      return OutOfRangeError(StrCat("the model's context holds ", limits.max_context, " tokens; the prompt has ",
                                    prompt, " and max_tokens asks for ", *request.max_tokens, " more"));
    out.max_tokens = *request.max_tokens;
  } else {
    out.max_tokens = request.chat ? room : std::min<int64_t>(16, room);
  }
  out.prompt_ids = std::move(prompt_ids);
  out.n = request.n;
  out.sampler.temperature = request.temperature;
  out.sampler.top_p = request.top_p;
  out.sampler.top_k = request.top_k;
  out.sampler.seed = request.seed ? *request.seed : default_seed;
  out.ignore_eos = request.ignore_eos;
  return out;
}

StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body) {
  KILN_ASSIGN_OR_RETURN(json root, ParseObject(body));
  TokenizeRequest r;
  KILN_RETURN_IF_ERROR(ReadString(root, "model", r.model));
  std::optional<std::string> prompt;
  KILN_RETURN_IF_ERROR(ReadString(root, "prompt", prompt));
  if (!prompt) return InvalidArgumentError("'prompt' is required");
  r.prompt = std::move(*prompt);
  KILN_RETURN_IF_ERROR(ReadBool(root, "add_special_tokens", r.add_special_tokens));
  return r;
}

StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body) {
  KILN_ASSIGN_OR_RETURN(json root, ParseObject(body));
  DetokenizeRequest r;
  KILN_RETURN_IF_ERROR(ReadString(root, "model", r.model));
  const json* tokens = Field(root, "tokens");
  if (!tokens) return InvalidArgumentError("'tokens' is required");
  if (!tokens->is_array()) return TypeError("tokens", "a list of token ids", *tokens);
  KILN_ASSIGN_OR_RETURN(r.tokens, ReadIds(*tokens, "tokens"));
  return r;
}

std::string CompletionResponseJson(const ResponseHeader& header, const std::vector<ChoiceText>& choices,
                                   const Usage& usage) {
  ordered_json out = HeaderJson(header, header.chat ? "chat.completion" : "text_completion");
  ordered_json list = ordered_json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    ordered_json c = {{"index", i}};
    if (header.chat) {
      c["message"] = {{"role", "assistant"}, {"content", choices[i].text}};
    } else {
      c["text"] = choices[i].text;
    }
    c["logprobs"] = nullptr;
    c["finish_reason"] = choices[i].finish_reason;
    list.push_back(std::move(c));
  }
  out["choices"] = std::move(list);
  out["usage"] = UsageJson(usage);
  return Dump(out);
}

std::string CompletionChunkJson(const ResponseHeader& header, int index, std::string_view text,
                                std::optional<std::string_view> finish_reason, bool role_only) {
  ordered_json out = HeaderJson(header, header.chat ? "chat.completion.chunk" : "text_completion");
  ordered_json c = {{"index", index}};
  if (header.chat) {
    ordered_json delta = ordered_json::object();
    if (role_only) {
      delta["role"] = "assistant";
      delta["content"] = "";
    } else if (!text.empty() || !finish_reason) {
      delta["content"] = text;
    }
    c["delta"] = std::move(delta);
  } else {
    c["text"] = text;
  }
  c["logprobs"] = nullptr;
  c["finish_reason"] = finish_reason ? ordered_json(*finish_reason) : ordered_json(nullptr);
  out["choices"] = ordered_json::array({std::move(c)});
  return Dump(out);
}

std::string UsageChunkJson(const ResponseHeader& header, const Usage& usage) {
  ordered_json out = HeaderJson(header, header.chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = ordered_json::array();
  out["usage"] = UsageJson(usage);
  return Dump(out);
}

std::string ModelObjectJson(std::string_view model, int64_t created, int64_t max_context) {
  return Dump(ordered_json{{"id", model},
                           {"object", "model"},
                           {"created", created},
                           {"owned_by", "kiln"},
                           {"max_model_len", max_context}});
}

std::string ModelListJson(std::string_view model, int64_t created, int64_t max_context) {
  ordered_json entry = ordered_json::parse(ModelObjectJson(model, created, max_context));
  return Dump(ordered_json{{"object", "list"}, {"data", ordered_json::array({std::move(entry)})}});
}

std::string TokenizeResponseJson(const std::vector<int64_t>& ids, int64_t max_context) {
  return Dump(ordered_json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", max_context}});
}

std::string DetokenizeResponseJson(std::string_view text) { return Dump(ordered_json{{"prompt", text}}); }

std::string SseEvent(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 8);
  out += "data: ";
  out += data;
  out += "\n\n";
  return out;
}

std::string_view ErrorTypeOf(int http_status) {
  switch (http_status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    default:
      return http_status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string_view DefaultErrorCode(int http_status) {
  switch (http_status) {
    case 400:
      return "invalid_request";
    case 401:
      return "invalid_api_key";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "request_too_large";
    case 429:
      return "queue_full";
    case 503:
      return "unavailable";
    default:
      return http_status >= 500 ? "internal_error" : "invalid_request";
  }
}

ApiError MakeApiError(int http_status, std::string message) {
  return ApiError{http_status, std::move(message), std::string(DefaultErrorCode(http_status))};
}

ApiError ApiErrorOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return MakeApiError(400, status.message());
    case StatusCode::kOutOfRange:
      return ApiError{400, status.message(), "context_length_exceeded"};
    case StatusCode::kNotFound:
      return MakeApiError(404, status.message());
    case StatusCode::kResourceExhausted:
      return MakeApiError(429, status.message());
    case StatusCode::kUnavailable:
      return MakeApiError(503, status.message());
    default:
      return MakeApiError(500, status.message());
  }
}

std::string ErrorBodyJson(const ApiError& error) {
  return Dump(ordered_json{
      {"error", {{"message", error.message}, {"type", ErrorTypeOf(error.http_status)}, {"code", error.code}}}});
}

}  // namespace kiln::serve
