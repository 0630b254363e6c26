//===- openai_api.h - OpenAI-compatible request and response bodies --------===//
//
// JSON lives only here, at the HTTP edge: request bodies are parsed and
// checked into plain structs, and responses, stream chunks and error bodies
// are written from plain values. Nothing here does I/O or touches a backend,
// so every rule can be unit-tested.
//
// Errors are Status values whose code picks the HTTP answer (HttpStatusOf):
// InvalidArgument -> 400, OutOfRange -> 400 with code "context_length_exceeded",
// NotFound -> 404, ResourceExhausted -> 429, Unavailable -> 503, others -> 500.
#ifndef KILN_RUNTIME_SERVE_OPENAI_API_H_
#define KILN_RUNTIME_SERVE_OPENAI_API_H_

#include <cstdint>
#include <optional>
#include <span>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/serve/backend.h"

namespace kiln::serve {

/// Most choices (`n`) and stop strings one request may ask for.
inline constexpr int kMaxChoices = 128;
inline constexpr int kMaxStopStrings = 16;

struct ChatMessage {
  std::string role;
  std::string content;
};

/// A /v1/completions or /v1/chat/completions body, types and ranges checked.
struct CompletionRequest {
  bool chat = false;
  std::string model;
  /// Completions: prompt text, or token ids used as given.
  std::variant<std::string, std::vector<int64_t>> prompt;
  /// Chat: the conversation (non-empty).
  std::vector<ChatMessage> messages;
  /// Absent: 16 for completions, the rest of the context for chat (both
  /// cut to what the context holds).
  std::optional<int64_t> max_tokens;
  double temperature = 1.0;
  double top_p = 1.0;
  /// 0 = no limit (-1 is accepted and means the same).
  int64_t top_k = 0;
  /// Absent: a random seed per request.
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int n = 1;
  bool stream = false;
  /// stream_options.include_usage: a last chunk carries `usage`.
  bool include_usage = false;
  bool ignore_eos = false;
};

/// Parses and checks a request body. Unknown fields are ignored (clients send
/// many optional ones); a known field of the wrong type or out of range, a
/// missing required field, malformed JSON or invalid UTF-8 is InvalidArgument
/// naming the field.
StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat);

/// How chat messages become prompt text. The artifact's (kiln-compile
/// --chat-template FILE, metadata llm.chat_template) is a JSON object:
///   {"message": "<|{role}|>\n{content}\n",          every message (default)
///    "roles": {"system": "[SYS]{content}[/SYS]"},    per-role overrides
///    "generation_prompt": "<|assistant|>\n"}        after the last message
/// where {role} and {content} are replaced (in one pass: message text is
/// never reinterpreted). Without one the default above is used: each message
/// as "<|role|>\ncontent\n", then "<|assistant|>\n" to cue the reply.
struct ChatTemplate {
  std::string message = "<|{role}|>\n{content}\n";
  std::map<std::string, std::string, std::less<>> roles;
  std::string generation_prompt = "<|assistant|>\n";

  /// Parses the JSON form; unknown keys or non-string values are errors.
  static StatusOr<ChatTemplate> Parse(std::string_view json_text);
  std::string Apply(const std::vector<ChatMessage>& messages) const;
};

/// The default template applied to `messages`.
std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages);

/// The model facts a request is checked against.
struct ModelLimits {
  /// Longest context, prompt plus generated ids (Backend::max_context()).
  int64_t max_context = 0;
  /// Ids the model accepts: [0, vocab_size).
  int64_t vocab_size = 0;
};

/// Prompt ids of a request: text is encoded with BOS first (as kiln-generate
/// does), chat messages go through ApplyChatTemplate first, id lists are
/// checked against the vocabulary and used as given. `tokenizer` may be null
/// (an artifact without one): then only id prompts work.
StatusOr<std::vector<int64_t>> PromptIds(const CompletionRequest& request, const llm::Tokenizer* tokenizer,
                                         const ModelLimits& limits, const ChatTemplate& chat_template = {});

/// InvalidArgument naming `field` unless every id is in [0, vocab_size).
Status CheckTokenIds(std::span<const int64_t> ids, int64_t vocab_size, std::string_view field);

/// The backend request: checks that the prompt fits the context with room
/// for max_tokens (OutOfRange otherwise) and fills the defaults.
StatusOr<GenerationRequest> MakeGenerationRequest(const CompletionRequest& request, std::vector<int64_t> prompt_ids,
                                                  const ModelLimits& limits, uint64_t default_seed);

/// POST /tokenize body {"prompt": text, "add_special_tokens": true, "model"?}.
struct TokenizeRequest {
  std::optional<std::string> model;
  std::string prompt;
  bool add_special_tokens = true;
};
StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body);
/// POST /detokenize body {"tokens": [ids], "model"?}.
struct DetokenizeRequest {
  std::optional<std::string> model;
  std::vector<int64_t> tokens;
};
StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body);

// ----- responses ------------------------------------------------------------

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

/// Identity shared by a response and all of its stream chunks.
struct ResponseHeader {
  bool chat = false;
  std::string id;  // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

struct ChoiceText {
  std::string text;
  std::string finish_reason;  // "stop" | "length"
};

/// The whole (non-streamed) response: object "text_completion" or
/// "chat.completion".
std::string CompletionResponseJson(const ResponseHeader& header, const std::vector<ChoiceText>& choices,
                                   const Usage& usage);
/// One stream chunk for choice `index` (object "text_completion" or
/// "chat.completion.chunk"): `text` as `text` or `delta.content`, with
/// `finish_reason` null unless given. For chat, `role_only` makes the first
/// chunk of a choice: delta {"role": "assistant", "content": ""}.
std::string CompletionChunkJson(const ResponseHeader& header, int index, std::string_view text,
                                std::optional<std::string_view> finish_reason, bool role_only = false);
/// The last chunk when stream_options.include_usage: no choices, only usage.
std::string UsageChunkJson(const ResponseHeader& header, const Usage& usage);
/// GET /v1/models and /v1/models/{id}.
std::string ModelObjectJson(std::string_view model, int64_t created, int64_t max_context);
std::string ModelListJson(std::string_view model, int64_t created, int64_t max_context);

/// POST /tokenize answer {"tokens": [...], "count": N, "max_model_len": C}.
std::string TokenizeResponseJson(const std::vector<int64_t>& ids, int64_t max_context);
/// POST /detokenize answer {"prompt": text}.
std::string DetokenizeResponseJson(std::string_view text);

/// One server-sent event carrying `data` (which must hold no newline: JSON
/// from these functions never does): "data: <data>\n\n".
std::string SseEvent(std::string_view data);
/// The event that ends every stream.
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// ----- errors ---------------------------------------------------------------

/// An error answer: HTTP status and the body's type/code.
struct ApiError {
  int http_status = 500;
  std::string message;
  /// Machine-readable code ("invalid_request", "model_not_found", ...).
  std::string code;
};

/// The default type ("invalid_request_error", ...) and code for an HTTP status.
std::string_view ErrorTypeOf(int http_status);
std::string_view DefaultErrorCode(int http_status);
/// ApiError with the status's default code.
ApiError MakeApiError(int http_status, std::string message);
/// The answer for a Status from parsing, preparing or Backend::Submit.
ApiError ApiErrorOf(const Status& status);
/// {"error": {"message": ..., "type": ..., "code": ...}}
std::string ErrorBodyJson(const ApiError& error);

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_OPENAI_API_H_
