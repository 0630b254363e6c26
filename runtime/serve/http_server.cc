//===- http_server.cc - Asynchronous HTTP/1.1 server on Boost.Beast --------===//
#include "runtime/serve/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <array>
#include <deque>
#include <optional>
#include <unordered_set>

#include "runtime/serve/openai_api.h"

namespace kiln::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

constexpr uint32_t kHeaderLimit = 16 * 1024;
/// Bytes a client may send ahead (pipelining) while its request is answered.
constexpr size_t kReadAheadLimit = 64 * 1024;
/// After an error answer that leaves a body unread, how long to drain it so
/// that the client sees the answer rather than a reset.
constexpr std::chrono::seconds kLingerTime{2};

class Session;

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(net::io_context& io_context, const HttpServerOptions& opts, HttpHandler* h)
      : io(io_context), options(opts), handler(h), acceptor(io_context), retry(io_context) {}
  void Accept();

  net::io_context& io;
  HttpServerOptions options;
  HttpHandler* handler;
  tcp::acceptor acceptor;
  net::steady_timer retry;  // accept again after running out of descriptors
  bool stopped = false;
  std::unordered_set<Session*> sessions;
};

namespace {

/// One connection: reads requests one after another and writes their answers.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> server)
      : stream_(std::move(socket)), server_(std::move(server)) {}
  ~Session() { server_->sessions.erase(this); }

  void Start() {
    server_->sessions.insert(this);
    error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    ReadHeader();
  }

  /// The server stops: drop an idle connection now, a busy one after its answer.
  void OnServerStop() {
    keep_alive_ = false;
    if (phase_ == Phase::kReadingHeader) Close();
  }

  // Responder calls, for the exchange `seq` (stale ones are ignored).
  void Send(uint64_t seq, HttpStatus status, std::string_view content_type, std::string body,
            const HttpHeaders& headers) {
    if (!Current(seq) || started_) return;
    started_ = true;
    auto res = std::make_shared<http::response<http::string_body>>(status, version_);
    SetHeaders(*res, content_type, headers);
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    Out out;
    out.kind = Out::kFull;
    out.full = std::move(res);
    Queue(std::move(out));
  }

  void BeginStream(uint64_t seq, HttpStatus status, std::string_view content_type, const HttpHeaders& headers) {
    if (!Current(seq) || started_) return;
    started_ = streaming_ = true;
    auto res = std::make_shared<http::response<http::empty_body>>(status, version_);
    SetHeaders(*res, content_type, headers);
    // HTTP/1.0 has no chunked encoding: the body ends when the connection does.
    chunked_ = version_ >= 11;
    if (chunked_) {
      res->keep_alive(keep_alive_);
      res->chunked(true);
    } else {
      keep_alive_ = false;
      res->keep_alive(false);
    }
    Out out;
    out.kind = Out::kHeader;
    out.header = std::move(res);
    out.serializer = std::make_shared<http::response_serializer<http::empty_body>>(*out.header);
    Queue(std::move(out));
  }

  void Write(uint64_t seq, std::string data) {
    // An empty chunk would end the chunked body early.
    if (!Current(seq) || !streaming_ || ended_ || data.empty()) return;
    pending_bytes_ += data.size();
    if (pending_bytes_ > server_->options.max_pending_write_bytes) {
      Close();  // the client reads nothing: treat it as gone
      return;
    }
    Out out;
    out.kind = Out::kChunk;
    out.data = std::move(data);
    Queue(std::move(out));
  }

  void End(uint64_t seq) {
    if (!Current(seq) || !streaming_ || ended_) return;
    ended_ = true;
    Out out;
    out.kind = Out::kLast;
    Queue(std::move(out));
  }

  bool Closed(uint64_t seq) const { return closed_ || seq != seq_; }

  void SetOnClose(uint64_t seq, std::function<void()> on_close) {
    if (seq != seq_) return;
    if (closed_) {
      if (on_close) on_close();
      return;
    }
    on_close_ = std::move(on_close);
  }

 private:
  enum class Phase { kReadingHeader, kReadingBody, kHandling, kAfterResponse, kClosed };

  /// A write waiting its turn.
  struct Out {
    enum Kind { kFull, kHeader, kChunk, kLast } kind = kFull;
    std::shared_ptr<http::response<http::string_body>> full;
    std::shared_ptr<http::response<http::empty_body>> header;
    std::shared_ptr<http::response_serializer<http::empty_body>> serializer;
    std::string data;
  };

  bool Current(uint64_t seq) const { return !closed_ && seq == seq_ && phase_ == Phase::kHandling; }

  template <class Response>
  void SetHeaders(Response& res, std::string_view content_type, const HttpHeaders& headers) {
    res.set(http::field::server, "kiln-serve");
    res.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) res.set(name, value);
  }

  void ReadHeader() {
    phase_ = Phase::kReadingHeader;
    if (server_->stopped) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(server_->options.max_body_bytes);
    stream_.expires_after(server_->options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      ReadFailed(ec);
      return;
    }
    const auto& req = parser_->get();
    if (boost::optional<uint64_t> length = parser_->content_length();
        length && *length > server_->options.max_body_bytes) {
      FailEarly(413, StrCat("the request body has ", *length, " bytes; the limit is ",
                            server_->options.max_body_bytes));
      return;
    }
    phase_ = Phase::kReadingBody;
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(stream_, *res, [self = shared_from_this(), res](error_code ec, size_t) {
        if (ec) {
          self->Close();
          return;
        }
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(server_->options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      ReadFailed(ec);
      return;
    }
    Dispatch();
  }

  /// A read ended in error: a quiet close for a gone or idle client, an
  /// error answer for a bad request.
  void ReadFailed(error_code ec) {
    if (ec == http::error::body_limit) {
      FailEarly(413, StrCat("the request body is over the limit of ", server_->options.max_body_bytes, " bytes"));
    } else if (ec == http::error::header_limit) {
      FailEarly(431, "the request header is too large");
    } else if (&ec.category() == &http::make_error_code(http::error::end_of_stream).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      FailEarly(400, StrCat("malformed HTTP request: ", ec.message()));
    } else {
      Close();  // end of stream, reset, timeout, or the server stopping
    }
  }

  /// Answers an error before the request was read in full, then closes.
  void FailEarly(int status, std::string message) {
    phase_ = Phase::kHandling;
    ++seq_;
    keep_alive_ = false;
    started_ = streaming_ = ended_ = false;
    version_ = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    linger_ = true;
    stream_.expires_never();
    ApiError error = MakeApiError(status, std::move(message));
    Send(seq_, static_cast<HttpStatus>(status), "application/json", ErrorBodyJson(error), {});
  }

  void Dispatch() {
    request_ = parser_->release();
    parser_.reset();
    phase_ = Phase::kHandling;
    ++seq_;
    // Answers carry a body even to HEAD (no route takes HEAD: they are 405s);
    // closing afterwards keeps the client from misreading the connection.
    keep_alive_ = request_.keep_alive() && !server_->stopped && request_.method() != http::verb::head;
    version_ = request_.version();
    started_ = streaming_ = ended_ = false;
    pending_bytes_ = 0;
    stream_.expires_never();
    Watch();
    server_->handler->Handle(request_, MakeResponder());
  }

  std::shared_ptr<Responder> MakeResponder();

  /// While a request is answered, a read notices a client that goes away.
  void Watch() {
    if (watching_ || closed_ || buffer_.size() >= kReadAheadLimit) return;
    watching_ = true;
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, size_t n) {
      self->OnWatch(ec, n);
    });
  }

  void OnWatch(error_code ec, size_t n) {
    watching_ = false;
    if (!ec) buffer_.commit(n);  // the start of a pipelined request: keep it
    if (phase_ == Phase::kClosed) return;
    if (phase_ == Phase::kAfterResponse) {
      // The answer is out and the read was cancelled to start the next one.
      if (ec && ec != net::error::operation_aborted) {
        Close();
      } else {
        ReadHeader();
      }
      return;
    }
    if (ec == net::error::operation_aborted) return;
    if (ec) {
      Close();  // the client is gone
      return;
    }
    Watch();
  }

  void Queue(Out out) {
    queue_.push_back(std::move(out));
    DoWrite();
  }

  void DoWrite() {
    if (writing_ || queue_.empty() || closed_) return;
    writing_ = true;
    Out& out = queue_.front();
    auto done = [self = shared_from_this()](error_code ec, size_t) { self->OnWrite(ec); };
    switch (out.kind) {
      case Out::kFull:
        http::async_write(stream_, *out.full, std::move(done));
        break;
      case Out::kHeader:
        http::async_write_header(stream_, *out.serializer, std::move(done));
        break;
      case Out::kChunk:
        if (chunked_) {
          net::async_write(stream_, http::make_chunk(net::buffer(out.data)), std::move(done));
        } else {
          net::async_write(stream_, net::buffer(out.data), std::move(done));
        }
        break;
      case Out::kLast:
        if (chunked_) {
          net::async_write(stream_, http::make_chunk_last(), std::move(done));
        } else {
          net::post(stream_.get_executor(), [done = std::move(done)]() mutable { done(error_code(), 0); });
        }
        break;
    }
  }

  void OnWrite(error_code ec) {
    writing_ = false;
    if (closed_) return;
    if (ec) {
      Close();
      return;
    }
    Out out = std::move(queue_.front());
    queue_.pop_front();
    if (out.kind == Out::kChunk) pending_bytes_ -= out.data.size();
    if (out.kind == Out::kFull || out.kind == Out::kLast) {
      ResponseDone();
      return;
    }
    DoWrite();
  }

  void ResponseDone() {
    on_close_ = nullptr;  // answered: the handler's job is over
    ++seq_;               // responders of this exchange go stale
    if (linger_) {
      Linger();
      return;
    }
    if (!keep_alive_ || server_->stopped) {
      error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      Close();
      return;
    }
    phase_ = Phase::kAfterResponse;
    if (watching_) {
      stream_.socket().cancel();  // OnWatch then reads the next request
    } else {
      ReadHeader();
    }
  }

  /// Half-closes and reads what the client still sends, so that it sees the
  /// error answer rather than a connection reset; then closes.
  void Linger() {
    phase_ = Phase::kAfterResponse;
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    DrainSome();  // no watch read is pending: the request was never dispatched
  }

  void DrainSome() {
    auto scratch = std::make_shared<std::array<char, 16384>>();
    stream_.async_read_some(net::buffer(*scratch), [self = shared_from_this(), scratch](error_code ec, size_t) {
      if (ec || self->phase_ == Phase::kClosed) {
        self->Close();
        return;
      }
      self->DrainSome();
    });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    closed_ = true;
    if (auto on_close = std::move(on_close_)) {
      on_close_ = nullptr;
      on_close();
    }
    error_code ignored;
    stream_.socket().close(ignored);
    stream_.expires_never();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  std::shared_ptr<HttpServer::State> server_;
  Phase phase_ = Phase::kReadingHeader;
  uint64_t seq_ = 0;  // exchange number: one per request answered
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool started_ = false, streaming_ = false, ended_ = false, chunked_ = true;
  bool linger_ = false;
  bool watching_ = false;
  bool writing_ = false;
  bool closed_ = false;
  std::deque<Out> queue_;
  size_t pending_bytes_ = 0;
  std::function<void()> on_close_;
};

/// The Responder of one exchange: forwards to the session while the
/// exchange is current, so that a late call cannot write into the answer to
/// a later request on the same connection.
class Exchange final : public Responder {
 public:
  Exchange(std::shared_ptr<Session> session, uint64_t seq) : session_(std::move(session)), seq_(seq) {}
  void Send(HttpStatus status, std::string_view content_type, std::string body,
            const HttpHeaders& headers) override {
    session_->Send(seq_, status, content_type, std::move(body), headers);
  }
  void BeginStream(HttpStatus status, std::string_view content_type, const HttpHeaders& headers) override {
    session_->BeginStream(seq_, status, content_type, headers);
  }
  void Write(std::string data) override { session_->Write(seq_, std::move(data)); }
  void End() override { session_->End(seq_); }
  bool closed() const override { return session_->Closed(seq_); }
  void OnClose(std::function<void()> on_close) override { session_->SetOnClose(seq_, std::move(on_close)); }

 private:
  std::shared_ptr<Session> session_;
  uint64_t seq_;
};

std::shared_ptr<Responder> Session::MakeResponder() { return std::make_shared<Exchange>(shared_from_this(), seq_); }

}  // namespace

void HttpServer::State::Accept() {
  if (stopped) return;
  acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (self->stopped) return;
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      // Out of descriptors (or another passing error): try again shortly
      // rather than spin.
      self->retry.expires_after(std::chrono::milliseconds(100));
      self->retry.async_wait([self](error_code wait_ec) {
        if (!wait_ec) self->Accept();
      });
      return;
    }
    std::make_shared<Session>(std::move(socket), self)->Start();
    self->Accept();
  });
}

HttpServer::HttpServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(net::io_context& io, const HttpServerOptions& options,
                                                         HttpHandler* handler) {
  if (!handler) return InvalidArgumentError("HttpServer: no handler");
  error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    return InvalidArgumentError(StrCat("cannot resolve host '", options.host, "': ", ec.message()));
  auto state = std::make_shared<State>(io, options, handler);
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  state->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint, ec);
  if (!ec) state->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return UnavailableError(
        StrCat("cannot listen on ", options.host, ":", options.port, ": ", ec.message()));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

uint16_t HttpServer::port() const {
  error_code ec;
  tcp::endpoint endpoint = state_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void HttpServer::Start() { state_->Accept(); }

void HttpServer::Stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  error_code ignored;
  state_->acceptor.close(ignored);
  state_->retry.cancel();
  // Copy: closing a session may destroy it, which edits the set.
  std::vector<std::weak_ptr<Session>> sessions;
  for (Session* s : state_->sessions) sessions.push_back(s->weak_from_this());
  for (auto& weak : sessions)
    if (auto s = weak.lock()) s->OnServerStop();
}

size_t HttpServer::connections() const { return state_->sessions.size(); }

}  // namespace kiln::serve
