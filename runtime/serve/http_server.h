//===- http_server.h - Asynchronous HTTP/1.1 server on Boost.Beast ---------===//
//
// Accepts connections on one io_context (one thread runs it) and reads each
// request header first: a Content-Length over the body limit is answered 413
// before any of the body is read. Complete requests go to an HttpHandler
// together with a Responder, which answers with a whole response or a
// chunked stream (server-sent events). While a request is being answered the
// connection is watched, so that a client that goes away is noticed at once
// (Responder::OnClose) and its work can be cancelled.
//
// Everything here, the handler's calls included, runs on the io_context's
// thread; other threads hand work over with boost::asio::post.
#ifndef KILN_RUNTIME_SERVE_HTTP_SERVER_H_
#define KILN_RUNTIME_SERVE_HTTP_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::serve {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpStatus = boost::beast::http::status;
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// The answer to one request. Calls after the client has gone are ignored.
class Responder {
 public:
  virtual ~Responder() = default;
  /// A whole response with Content-Length.
  virtual void Send(HttpStatus status, std::string_view content_type, std::string body,
                    const HttpHeaders& headers = {}) = 0;
  /// A chunked response: the header now, then Write each piece, then End.
  virtual void BeginStream(HttpStatus status, std::string_view content_type, const HttpHeaders& headers = {}) = 0;
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;
  /// True once the client is gone (or the connection failed).
  virtual bool closed() const = 0;
  /// `on_close` runs once if the client goes away before the response ended.
  virtual void OnClose(std::function<void()> on_close) = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  /// Answers `request` through `responder`, now or later (keep the pointer).
  virtual void Handle(HttpRequest& request, std::shared_ptr<Responder> responder) = 0;
};

struct HttpServerOptions {
  /// Address or host name to bind.
  std::string host = "127.0.0.1";
  /// 0 picks a free port (see HttpServer::port()).
  uint16_t port = 8000;
  /// Largest request body; more is answered 413.
  uint64_t max_body_bytes = 8ull << 20;
  /// Longest wait for a request header (and a body) on an open connection.
  std::chrono::seconds idle_timeout{60};
  /// A stream whose client reads nothing lets this much pile up before the
  /// connection is dropped as gone.
  size_t max_pending_write_bytes = 16u << 20;
};

class HttpServer {
 public:
  /// Binds and listens (errors: a bad host, a port in use). `handler` is
  /// borrowed and must outlive the server's connections.
  static StatusOr<std::unique_ptr<HttpServer>> Create(boost::asio::io_context& io, const HttpServerOptions& options,
                                                      HttpHandler* handler);
  ~HttpServer();

  /// The port listened on (the one picked when options.port was 0).
  uint16_t port() const;
  /// Starts accepting connections.
  void Start();
  /// Stops accepting, closes idle connections at once and the others after
  /// their current response. Idempotent.
  void Stop();
  /// Open connections.
  size_t connections() const;

  /// The listener and its connections (http_server.cc).
  struct State;

 private:
  explicit HttpServer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_HTTP_SERVER_H_
