//===- status.h - Status and StatusOr<T>: errors as values ----------------===//
//
// The runtime never throws across a library boundary: anything that can fail
// returns a [[nodiscard]] Status or StatusOr<T> and callers propagate it with
// KILN_RETURN_IF_ERROR / KILN_ASSIGN_OR_RETURN. Messages are one line, meant
// to be printed as-is by a tool ("kiln-run: error: <message>").
#ifndef KILN_RUNTIME_BASE_STATUS_H_
#define KILN_RUNTIME_BASE_STATUS_H_

#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kiln {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kUnimplemented,
  kInternal,
  kOutOfRange,
  kDataLoss,
  kResourceExhausted,
  kFailedPrecondition,
  kUnavailable,
};

/// Upper-case name of a code, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

/// Success, or an error code with a one-line message.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// "CODE: message", or "OK".
  std::string ToString() const;

  /// Returns a copy whose message is "<prefix>: <message>" (no-op when ok),
  /// so callers can say which input/instruction an error belongs to.
  Status Annotate(std::string_view prefix) const;

  /// Explicitly drops an error that a caller chose to ignore.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status OutOfRangeError(std::string message);
Status DataLossError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnavailableError(std::string message);

namespace internal {
/// Aborts with a message; reached only by misuse (value() of an error).
[[noreturn]] void StatusOrAccessFailed(const Status& status);
}  // namespace internal

/// Either a value of T or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  /// An error; constructing from an ok Status is a bug and becomes Internal.
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit
    if (status_.ok()) status_ = InternalError("StatusOr built from ok Status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit
  template <typename U>
    requires(std::is_convertible_v<U &&, T> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Status>)
  StatusOr(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  const T& value() const& {
    if (!ok()) internal::StatusOrAccessFailed(status_);
    return *value_;
  }
  T& value() & {
    if (!ok()) internal::StatusOrAccessFailed(status_);
    return *value_;
  }
  T&& value() && {
    if (!ok()) internal::StatusOrAccessFailed(status_);
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

/// Concatenates anything printable with operator<< into a string.
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace kiln

#define KILN_STATUS_CONCAT_INNER_(a, b) a##b
#define KILN_STATUS_CONCAT_(a, b) KILN_STATUS_CONCAT_INNER_(a, b)

/// Returns the Status of `expr` from the enclosing function when it is an error.
#define KILN_RETURN_IF_ERROR(expr)                   \
  do {                                               \
    ::kiln::Status kiln_status_tmp_ = (expr);        \
    if (!kiln_status_tmp_.ok()) return kiln_status_tmp_; \
  } while (0)

/// `KILN_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns the value of a
/// StatusOr, or returns its error from the enclosing function.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_STATUS_CONCAT_(kiln_statusor_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()

#endif  // KILN_RUNTIME_BASE_STATUS_H_
