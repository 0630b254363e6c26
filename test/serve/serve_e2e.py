#!/usr/bin/env python3
"""End-to-end tests of kiln-serve on a compiled fixture model.

    serve_e2e.py --case CASE --bin-dir BUILD/bin --model llama-s.kiln
                 [--node node] [--promtool promtool] [--device vulkan]

Each case starts its own kiln-serve on port 0 (the port comes from the
server's first stdout line), runs its checks, and stops the server with
SIGTERM, which must exit 0. Cases:

  openai       the official `openai` npm client (openai_client.mjs): completions,
               chat, streaming, stop strings, n, ids prompts; greedy text must
               equal kiln-generate's for the same prompt
  errors       every error answer: status code and {"error": {message, type, code}}
  concurrency  256 streaming connections open at once, all complete
  disconnect   a client that goes away mid-stream (or while waiting) is cancelled
  metrics      promtool check metrics on the live /metrics, and its figures
  sigterm      SIGTERM/SIGINT with work in flight: the client is answered, exit 0
  cli          bad flags, bad artifact, port in use: one-line error, exit 1

Only the standard library is used here (http.client for HTTP).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MODEL_NAME = "llama-s"
CONTEXT = 1024  # llama-s max_position_embeddings


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


class Server:
    """A kiln-serve process on a free port."""

    def __init__(self, args, extra=(), wait_ready=True):
        self.args = args
        self.stderr = tempfile.TemporaryFile()
        cmd = [os.path.join(args.bin_dir, "kiln-serve"), args.model, "--port", "0",
               "--threads", "1", "--model-name", MODEL_NAME, "--device", args.device, *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        first = self._line(20)
        event = json.loads(first)
        check(event.get("event") == "listening", f"first line is not the listening event: {first!r}")
        self.port = event["port"]
        check(isinstance(self.port, int) and self.port > 0, f"bad port in {first!r}")
        if wait_ready:
            ready = json.loads(self._line(60))
            check(ready.get("event") == "ready", f"second line is not the ready event: {ready}")
            check(ready.get("max_model_len") == CONTEXT, f"ready event: {ready}")

    def _line(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not out or not out[0]:
            raise Failure(f"kiln-serve printed no line in {timeout}s; stderr: {self.stderr_text()}")
        return out[0].strip()

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=False):
        """(status, headers, parsed JSON body | raw bytes) on a new connection."""
        c = self.conn()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if raw:
            return r.status, dict(r.getheaders()), data
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            raise Failure(f"{method} {path}: body is not JSON: {data[:200]!r}")
        return r.status, dict(r.getheaders()), parsed

    def metrics(self):
        status, headers, data = self.request("GET", "/metrics", raw=True)
        check(status == 200, f"/metrics answered {status}")
        return data.decode(), headers

    def metric(self, name):
        text, _ = self.metrics()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise Failure(f"/metrics has no {name}")

    def wait_metric(self, name, predicate, timeout=10, what=""):
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            value = self.metric(name)
            if predicate(value):
                return value
            time.sleep(0.01)
        raise Failure(f"{name} stayed at {value} for {timeout}s {what}")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends `sig`, returns the exit code (must come within `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure(f"kiln-serve did not exit {timeout}s after {sig.name}")
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def generate(args, prompt=None, prompt_ids=None, max_tokens=24, temperature=0.0, seed=None, ignore_eos=False):
    """kiln-generate --json: {"prompt_ids", "ids", "text"}."""
    cmd = [os.path.join(args.bin_dir, "kiln-generate"), args.model, "--json", "--threads", "1",
           "--device", args.device,
           "--max-tokens", str(max_tokens), "--temperature", str(temperature)]
    if prompt is not None:
        cmd += ["--prompt", prompt]
    else:
        cmd += ["--prompt-ids", ",".join(map(str, prompt_ids))]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if ignore_eos:
        cmd.append("--ignore-eos")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise Failure(f"kiln-generate failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def chat_template(messages):
    """The documented default template (docs/serving.md)."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


def stream_lines(resp):
    """SSE `data:` payloads of a streamed response, as they arrive."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if line.startswith("data: "):
            yield line[6:]
        else:
            check(line == "", f"unexpected SSE line {line!r}")


def open_stream(server, body, path="/v1/completions", headers=None):
    """Starts a streamed request; returns (connection, response)."""
    c = server.conn()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", path, body=json.dumps({**body, "stream": True}), headers=h)
    r = c.getresponse()
    if r.status != 200:
        raise Failure(f"stream answered {r.status}: {r.read()[:300]!r}")
    check(r.getheader("Content-Type", "").startswith("text/event-stream"), "stream Content-Type")
    return c, r


def hard_close(conn):
    """Drops a client connection at once (as a killed client would)."""
    sock = conn.sock
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    conn.close()


# ----- cases -------------------------------------------------------------------

def case_openai(args):
    prompts = {
        "linux": "Linux is",
        "eos": "The cat",  # greedy reaches EOS after 17 ids
    }
    expected = {k: generate(args, prompt=p, max_tokens=24) for k, p in prompts.items()}
    check(expected["eos"]["ids"][-1] == 2 and len(expected["eos"]["ids"]) < 24,
          f"fixture changed: 'The cat' no longer stops at EOS: {expected['eos']}")
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me a joke."}]
    chat = generate(args, prompt=chat_template(messages), max_tokens=24)
    sampled = [generate(args, prompt="Love is", max_tokens=16, temperature=0.9, seed=41 + i) for i in range(2)]
    spec = {"model": MODEL_NAME, "prompts": prompts, "expected": expected, "messages": messages, "chat": chat,
            "sampled": {"prompt": "Love is", "seed": 41, "max_tokens": 16, "temperature": 0.9, "texts": [s["text"] for s in sampled]}}
    server = Server(args)
    try:
        # /tokenize and /detokenize agree with kiln-generate's encoding and text.
        g = expected["linux"]
        status, _, body = server.request("POST", "/tokenize", {"prompt": prompts["linux"]})
        check(status == 200 and body["tokens"] == g["prompt_ids"] and body["count"] == len(g["prompt_ids"]),
              f"/tokenize: {status} {body} (kiln-generate: {g['prompt_ids']})")
        status, _, body = server.request("POST", "/tokenize", {"prompt": prompts["linux"], "add_special_tokens": False})
        check(status == 200 and body["tokens"] == g["prompt_ids"][1:], f"/tokenize without BOS: {body}")
        status, _, body = server.request("POST", "/detokenize", {"tokens": g["ids"]})
        check(status == 200 and body == {"prompt": g["text"]}, f"/detokenize: {status} {body}")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        out = subprocess.run([args.node, os.path.join(os.path.dirname(__file__), "openai_client.mjs"), "api",
                              f"http://127.0.0.1:{server.port}/v1", f.name], capture_output=True, text=True, timeout=120)
        os.unlink(f.name)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        check(out.returncode == 0, f"openai_client.mjs api failed (exit {out.returncode})")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


def expect_error(server, status, method, path, body=None, headers=None, code=None, what=""):
    got, h, data = server.request(method, path, body=body, headers=headers)
    check(got == status, f"{what or path}: expected {status}, got {got}: {data}")
    check(isinstance(data, dict) and set(data) == {"error"}, f"{what}: error body {data}")
    err = data["error"]
    check(isinstance(err, dict) and set(err) == {"message", "type", "code"}, f"{what}: error object {err}")
    check(all(isinstance(err[k], str) and err[k] for k in err), f"{what}: error fields must be non-empty strings: {err}")
    if code:
        check(err["code"] == code, f"{what}: code {err['code']!r}, expected {code!r}")
    return h, err


def raw_exchange(port, data, read_timeout=5):
    """Sends raw bytes, returns (status, headers, body) of the answer read with
    http.client's parser."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.sendall(data)
    r = http.client.HTTPResponse(s)
    r.begin()
    body = r.read()
    s.close()
    return r.status, dict(r.getheaders()), json.loads(body)


def case_errors(args):
    key = "sk-test-123"
    auth = {"Authorization": f"Bearer {key}"}
    limit = 16384
    # --max-num-seqs 8: the blocker's 8 choices take every seat, so the next
    # request waits (continuous batching would otherwise run it at once).
    server = Server(args, ["--api-key", key, "--max-body-bytes", str(limit), "--max-queue", "1",
                           "--max-num-seqs", "8"])
    good = {"model": MODEL_NAME, "prompt": "Linux is", "max_tokens": 4, "temperature": 0}
    try:
        # Open routes and authentication.
        status, _, body = server.request("GET", "/health")
        check(status == 200, f"/health without a key: {status}")
        check(server.request("GET", "/metrics", raw=True)[0] == 200, "/metrics without a key")
        expect_error(server, 401, "POST", "/v1/completions", good, code="invalid_api_key", what="no key")
        expect_error(server, 401, "POST", "/v1/completions", good, {"Authorization": "Bearer wrong"}, what="wrong key")
        expect_error(server, 401, "POST", "/v1/completions", good, {"Authorization": key}, what="key without Bearer")
        expect_error(server, 401, "GET", "/v1/models", what="models without key")
        expect_error(server, 401, "POST", "/tokenize", {"prompt": "x"}, what="tokenize without key")
        status, _, body = server.request("POST", "/v1/completions", good, auth)
        check(status == 200 and body["choices"][0]["finish_reason"] == "length", f"good request: {status} {body}")

        # Routes and methods.
        expect_error(server, 404, "GET", "/nope", headers=auth, code="not_found", what="unknown route")
        expect_error(server, 404, "POST", "/v1/completion", good, auth, what="near-miss route")
        h, _ = expect_error(server, 405, "GET", "/v1/completions", headers=auth, code="method_not_allowed",
                            what="GET completions")
        check(h.get("Allow") == "POST", f"405 Allow header: {h}")
        h, _ = expect_error(server, 405, "POST", "/health", {}, what="POST /health")
        check(h.get("Allow") == "GET", f"405 Allow header: {h}")
        expect_error(server, 405, "DELETE", "/v1/chat/completions", headers=auth, what="DELETE chat")

        # Unknown model.
        expect_error(server, 404, "POST", "/v1/completions", {**good, "model": "gpt-4"}, auth, code="model_not_found",
                     what="unknown model")
        expect_error(server, 404, "POST", "/v1/chat/completions",
                     {"model": "x", "messages": [{"role": "user", "content": "hi"}]}, auth, code="model_not_found")
        expect_error(server, 404, "GET", "/v1/models/other", headers=auth, code="model_not_found")
        expect_error(server, 404, "POST", "/tokenize", {"model": "x", "prompt": "a"}, auth, code="model_not_found")

        # Bad bodies: 400 each.
        bad_bodies = [
            ("malformed JSON", b'{"model": "llama-s", "prompt": '),
            ("not an object", b'["llama-s"]'),
            ("empty body", b""),
            ("invalid UTF-8", b'{"model": "llama-s", "prompt": "\xff\xfe"}'),
            ("lone surrogate", b'{"model": "llama-s", "prompt": "\\ud800"}'),
            ("missing model", {"prompt": "x"}),
            ("missing prompt", {"model": MODEL_NAME}),
            ("model not a string", {"model": 1, "prompt": "x"}),
            ("prompt wrong type", {"model": MODEL_NAME, "prompt": {"a": 1}}),
            ("max_tokens string", {**good, "max_tokens": "4"}),
            ("max_tokens zero", {**good, "max_tokens": 0}),
            ("max_tokens negative", {**good, "max_tokens": -1}),
            ("temperature negative", {**good, "temperature": -1}),
            ("top_p zero", {**good, "top_p": 0}),
            ("n zero", {**good, "n": 0}),
            ("stream not bool", {**good, "stream": "yes"}),
            ("stop wrong type", {**good, "stop": 5}),
            ("id outside vocabulary", {**good, "prompt": [1, 2048]}),
            ("negative id", {**good, "prompt": [-5]}),
        ]
        for what, body in bad_bodies:
            expect_error(server, 400, "POST", "/v1/completions", body, auth, code="invalid_request", what=what)
        expect_error(server, 400, "POST", "/v1/chat/completions", {"model": MODEL_NAME, "messages": []}, auth,
                     what="empty messages")
        expect_error(server, 400, "POST", "/v1/chat/completions", {"model": MODEL_NAME}, auth, what="missing messages")
        expect_error(server, 400, "POST", "/v1/chat/completions",
                     {"model": MODEL_NAME, "messages": [{"role": "user", "content": 5}]}, auth, what="content type")
        expect_error(server, 400, "POST", "/tokenize", {"prompt": 5}, auth, what="tokenize wrong type")
        expect_error(server, 400, "POST", "/detokenize", {"tokens": [99999]}, auth, what="detokenize bad id")
        # Context: a prompt longer than the context, and one that leaves too little room.
        expect_error(server, 400, "POST", "/v1/completions", {**good, "prompt": [5] * (CONTEXT + 10)}, auth,
                     code="context_length_exceeded", what="prompt longer than the context")
        expect_error(server, 400, "POST", "/v1/completions", {**good, "prompt": [5] * CONTEXT}, auth,
                     code="context_length_exceeded", what="prompt as long as the context")
        expect_error(server, 400, "POST", "/v1/completions", {**good, "prompt": [5] * 1000, "max_tokens": 25}, auth,
                     code="context_length_exceeded", what="prompt + max_tokens over the context")
        status, _, body = server.request("POST", "/v1/completions", {**good, "prompt": [5] * 1000, "max_tokens": 24},
                                         auth)
        check(status == 200 and body["usage"]["completion_tokens"] <= 24, f"prompt + max_tokens == context: {status}")

        # Body limits: 413 from Content-Length before the body is read.
        port = server.port
        status, headers, body = raw_exchange(port, (
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 100000000\r\n\r\n").encode())
        check(status == 413 and body["error"]["code"] == "request_too_large", f"Content-Length over limit: {status}")
        check(headers.get("Connection", "").lower() == "close", f"413 must close the connection: {headers}")
        big = {**good, "prompt": "x" * (limit + 10)}
        expect_error(server, 413, "POST", "/v1/completions", big, auth, code="request_too_large", what="big body")
        # Over the limit in chunks (no Content-Length): 413 once the limit is passed.
        chunk = b"x" * 4096
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // 4096 + 2)) + b"0\r\n\r\n"
        status, _, body = raw_exchange(port, (
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: Bearer {key}\r\n\r\n").encode() + chunked)
        check(status == 413, f"chunked body over the limit: {status}")
        # Just under the limit is read and judged on its content.
        status, _, _ = server.request("POST", "/v1/completions", b"{" + b" " * (limit - 2) + b"}", auth)
        check(status == 400, f"body at the limit: {status}")

        # Malformed HTTP and oversized headers.
        status, headers, body = raw_exchange(port, b"GARBAGE\r\n\r\n")
        check(status == 400 and set(body["error"]) == {"message", "type", "code"}, f"malformed HTTP: {status}")
        status, headers, body = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 +
                                             b"\r\n\r\n")
        check(status == 431, f"huge header: {status}")

        # Queue full: 429. One request runs (holding the worker), one waits
        # (--max-queue 1), the next is refused. The blocker's 8 x 1000 tokens
        # take seconds; on a loaded machine it may finish before the third
        # request arrives (then the queue has drained and 200 is right), so
        # that case is tried again, and only "never 429" fails.
        blocker_body = {"model": MODEL_NAME, "prompt": "Linux is", "max_tokens": 1000, "n": 8, "ignore_eos": True,
                        "temperature": 0}
        refused = None
        for attempt in range(3):
            bc, br = open_stream(server, blocker_body, headers=auth)
            next(stream_lines(br))  # the first chunk: it is running
            waiting_result = {}

            def waiting_request():
                waiting_result["r"] = server.request("POST", "/v1/completions", good, auth)

            t = threading.Thread(target=waiting_request)
            t.start()
            server.wait_metric("kiln_num_requests_waiting", lambda v: v == 1, what="(second request never queued)")
            status, _, body = server.request("POST", "/v1/completions", good, auth)
            blocker_ran = server.metric("kiln_num_requests_running") == 1
            hard_close(bc)  # cancels the blocker; the waiting request then runs
            t.join(30)
            check(not t.is_alive(), "the waiting request never finished")
            wstatus, _, wbody = waiting_result["r"]
            check(wstatus == 200 and wbody["choices"][0]["finish_reason"] == "length",
                  f"waiting request: {wstatus} {wbody}")
            if status == 429:
                refused = body
                check(blocker_ran, "a request was refused while nothing ran")
                break
            check(status == 200, f"queue full: expected 429 (or 200 once the queue drained), got {status}: {body}")
            print(f"  queue full: answered 200, the queue had drained (attempt {attempt + 1}); again", flush=True)
        check(refused is not None, "queue full: never answered 429 in 3 attempts")
        check(set(refused) == {"error"} and refused["error"].get("code") == "queue_full",
              f"queue full: error body {refused}")

        # Still healthy after all that.
        check(server.request("GET", "/health")[0] == 200, "/health after the errors")
        status, _, body = server.request("POST", "/v1/completions", good, auth)
        check(status == 200, f"a good request after the errors: {status}")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


def case_concurrency(args):
    # One seat: the 256 streams provably wait at once behind a long request
    # (connections, not batching, are under test here; e2e-batching-llama-s
    # runs 64 requests in one batch).
    server = Server(args, ["--max-num-seqs", "1"])
    try:
        out = subprocess.run([args.node, os.path.join(os.path.dirname(__file__), "openai_client.mjs"), "concurrency",
                              f"http://127.0.0.1:{server.port}/v1", MODEL_NAME, "256"],
                             capture_output=True, text=True, timeout=180)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        check(out.returncode == 0, f"openai_client.mjs concurrency failed (exit {out.returncode})")
        check(server.request("GET", "/health")[0] == 200, "/health after 256 streams")
        check(server.metric("kiln_num_requests_running") == 0 and server.metric("kiln_num_requests_waiting") == 0,
              "requests left over after 256 streams")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


def case_disconnect(args):
    # One seat, so that a second request provably waits behind the first.
    server = Server(args, ["--max-num-seqs", "1"])
    long_body = {"model": MODEL_NAME, "prompt": "Linux is", "max_tokens": 1000, "ignore_eos": True, "temperature": 0}
    try:
        # 1. Streaming: read a few chunks, then vanish.
        before = server.metric("kiln_generation_tokens_total")
        c, r = open_stream(server, long_body)
        lines = stream_lines(r)
        for _ in range(3):
            next(lines)
        hard_close(c)
        server.wait_metric("kiln_num_requests_running", lambda v: v == 0, timeout=5,
                           what="after the streaming client went away")
        made = server.metric("kiln_generation_tokens_total") - before
        check(made < 900, f"{made} tokens were generated for a client gone after 3: not cancelled")
        # The cancelled request is no success.
        check(server.metric("kiln_request_success_total") == 0, "a cancelled request counted as a success")

        # 2. Not streaming: the connection is watched while the answer is made.
        before = server.metric("kiln_generation_tokens_total")
        c = server.conn()
        c.request("POST", "/v1/completions", body=json.dumps({**long_body, "n": 4}),
                  headers={"Content-Type": "application/json"})
        server.wait_metric("kiln_num_requests_running", lambda v: v == 1, what="(request never started)")
        hard_close(c)
        server.wait_metric("kiln_num_requests_running", lambda v: v == 0, timeout=5,
                           what="after the non-streaming client went away")
        made = server.metric("kiln_generation_tokens_total") - before
        check(made < 3000, f"{made} of 4000 tokens generated for a gone client: not cancelled")

        # 3. Waiting in the queue: going away takes the request out of it.
        bc, br = open_stream(server, {**long_body, "n": 8})
        next(stream_lines(br))
        wc = server.conn()
        wc.request("POST", "/v1/completions", body=json.dumps(long_body), headers={"Content-Type": "application/json"})
        server.wait_metric("kiln_num_requests_waiting", lambda v: v == 1, what="(second request never queued)")
        hard_close(wc)
        server.wait_metric("kiln_num_requests_waiting", lambda v: v == 0, timeout=5,
                           what="after the waiting client went away")
        check(server.metric("kiln_num_requests_running") == 1, "the running request was touched")
        hard_close(bc)
        server.wait_metric("kiln_num_requests_running", lambda v: v == 0, timeout=5)

        # The server serves on.
        status, _, body = server.request("POST", "/v1/completions", {**long_body, "max_tokens": 5})
        check(status == 200 and body["usage"]["completion_tokens"] == 5, f"after disconnects: {status} {body}")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


def case_metrics(args):
    server = Server(args)
    try:
        usage = {"prompt": 0, "completion": 0}
        requests = [
            ("/v1/completions", {"model": MODEL_NAME, "prompt": "Linux is", "max_tokens": 12, "ignore_eos": True}),
            ("/v1/completions", {"model": MODEL_NAME, "prompt": [1, 5, 9], "max_tokens": 7, "n": 2, "ignore_eos": True}),
            ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}],
                                      "max_tokens": 5, "ignore_eos": True}),
        ]
        for path, body in requests:
            status, _, data = server.request("POST", path, body)
            check(status == 200, f"{path}: {status} {data}")
            usage["prompt"] += data["usage"]["prompt_tokens"]
            usage["completion"] += data["usage"]["completion_tokens"]
        c, r = open_stream(server, {**requests[0][1], "stream_options": {"include_usage": True}})
        chunks = [json.loads(d) for d in stream_lines(r) if d != "[DONE]"]
        c.close()
        usage["prompt"] += chunks[-1]["usage"]["prompt_tokens"]
        usage["completion"] += chunks[-1]["usage"]["completion_tokens"]
        server.request("POST", "/v1/completions", {"model": "nope", "prompt": "x"})  # an error: not a success

        text, headers = server.metrics()
        check(headers.get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8", f"Content-Type: {headers}")
        lint = subprocess.run([args.promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        check(lint.returncode == 0, f"promtool check metrics failed:\n{lint.stdout}{lint.stderr}\n---\n{text}")
        types = {"kiln_num_requests_running": "gauge", "kiln_num_requests_waiting": "gauge",
                 "kiln_kv_cache_usage_ratio": "gauge", "kiln_prefix_cache_hits_total": "counter",
                 "kiln_prefix_cache_queries_total": "counter", "kiln_prompt_tokens_total": "counter",
                 "kiln_generation_tokens_total": "counter", "kiln_request_success_total": "counter",
                 "kiln_time_to_first_token_seconds": "histogram", "kiln_inter_token_latency_seconds": "histogram",
                 "kiln_e2e_request_latency_seconds": "histogram"}
        for name, kind in types.items():
            check(f"# TYPE {name} {kind}\n" in text, f"/metrics lacks '# TYPE {name} {kind}'")
            check(f"# HELP {name} " in text, f"/metrics lacks HELP of {name}")
        check(server.metric("kiln_prompt_tokens_total") == usage["prompt"],
              f"prompt tokens {server.metric('kiln_prompt_tokens_total')} != usage {usage['prompt']}")
        check(server.metric("kiln_generation_tokens_total") == usage["completion"],
              f"generation tokens {server.metric('kiln_generation_tokens_total')} != usage {usage['completion']}")
        check(server.metric("kiln_request_success_total") == 4, "request_success_total != 4")
        check(server.metric("kiln_time_to_first_token_seconds_count") == 4, "TTFT count != 4 requests")
        check(server.metric("kiln_e2e_request_latency_seconds_count") == 4, "e2e latency count != 4")
        # Every choice contributes (tokens - 1) inter-token gaps.
        gaps = (12 - 1) + 2 * (7 - 1) + (5 - 1) + (12 - 1)
        check(server.metric("kiln_inter_token_latency_seconds_count") == gaps, f"ITL count != {gaps}")
        for name in ("kiln_time_to_first_token_seconds", "kiln_inter_token_latency_seconds",
                     "kiln_e2e_request_latency_seconds"):
            inf = [l for l in text.splitlines() if l.startswith(name + '_bucket{le="+Inf"}')]
            check(len(inf) == 1 and float(inf[0].split()[-1]) == server.metric(name + "_count"),
                  f"{name}: +Inf bucket != count")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


def case_sigterm(args):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = Server(args)
        try:
            body = {"model": MODEL_NAME, "prompt": "Linux is", "max_tokens": 1000, "n": 8, "ignore_eos": True}
            c, r = open_stream(server, body)
            lines = stream_lines(r)
            next(lines)
            idle = server.conn()  # an idle keep-alive connection must not hold the exit
            idle.request("GET", "/health")
            check(idle.getresponse().read() is not None, "health")
            start = time.time()
            server.proc.send_signal(sig)
            rest = list(lines)
            check(rest and rest[-1] == "[DONE]", f"{sig.name}: stream did not end with [DONE]: {rest[-2:]}")
            err = json.loads(rest[-2])
            check(err.get("error", {}).get("code") == "unavailable", f"{sig.name}: no error event before [DONE]: {err}")
            rc = server.stop(sig)
            took = time.time() - start
            check(rc == 0, f"{sig.name}: exit code {rc}; stderr: {server.stderr_text()}")
            check(took < 5, f"{sig.name}: exit took {took:.1f}s")
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
                raise Failure(f"{sig.name}: still accepting connections after exit")
            except OSError:
                pass
        finally:
            server.close()
    # A signal while idle, and one while the model may still be loading.
    for wait_ready in (True, False):
        server = Server(args, wait_ready=wait_ready)
        try:
            check(server.stop() == 0, f"SIGTERM (ready: {wait_ready}): exit code; stderr {server.stderr_text()}")
        finally:
            server.close()


def case_cli(args):
    exe = os.path.join(args.bin_dir, "kiln-serve")

    def one_line_error(cmd, what):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        check(out.returncode == 1, f"{what}: exit {out.returncode}, stderr {out.stderr!r}")
        lines = out.stderr.strip().splitlines()
        check(len(lines) == 1 and lines[0].startswith("kiln-serve: error: "), f"{what}: stderr {out.stderr!r}")

    one_line_error([exe], "no artifact")
    one_line_error([exe, args.model, "--port", "70000"], "port out of range")
    one_line_error([exe, args.model, "--port", "abc"], "port not a number")
    one_line_error([exe, args.model, "--max-queue", "-1"], "negative queue")
    one_line_error([exe, args.model, "--max-body-bytes", "0"], "zero body limit")
    one_line_error([exe, args.model, "--threads", "-2"], "negative threads")
    one_line_error([exe, args.model, "--max-num-seqs", "0"], "zero max-num-seqs")
    one_line_error([exe, args.model, "--bogus"], "unknown flag")
    one_line_error([exe, "/nonexistent/model.kiln"], "missing artifact")
    with tempfile.NamedTemporaryFile(suffix=".kiln") as bad:
        bad.write(b"KILN" + b"\0" * 100)
        bad.flush()
        one_line_error([exe, bad.name, "--port", "0"], "corrupt artifact")
    one_line_error([exe, args.model, "--host", "no.such.host.invalid", "--port", "0"], "bad host")
    # Failures found while loading, after the listener is up: still one line, exit 1.
    one_line_error([exe, args.model, "--port", "0", "--device", "no-such-device"], "unknown device")
    server = Server(args)
    try:
        one_line_error([exe, args.model, "--port", str(server.port)], "port in use")
        check(server.stop() == 0, "kiln-serve did not exit 0 on SIGTERM")
    finally:
        server.close()


CASES = {"openai": case_openai, "errors": case_errors, "concurrency": case_concurrency,
         "disconnect": case_disconnect, "metrics": case_metrics, "sigterm": case_sigterm, "cli": case_cli}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", required=True, choices=sorted(CASES))
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--model", required=True, help="compiled llama-s .kiln")
    p.add_argument("--node", default="node")
    p.add_argument("--promtool", default="promtool")
    p.add_argument("--device", default="cpu", help="HAL driver of kiln-serve and kiln-generate")
    args = p.parse_args()
    if args.case in ("openai", "concurrency"):
        here = os.path.dirname(os.path.abspath(__file__))
        if not os.path.isdir(os.path.join(here, "node_modules", "openai")):
            print(f"serve_e2e: the openai npm package is missing: run 'npm ci' in {here} (scripts/setup.sh does)",
                  file=sys.stderr)
            return 1
    start = time.time()
    try:
        CASES[args.case](args)
    except Failure as e:
        print(f"FAIL {args.case}: {e}", file=sys.stderr)
        return 1
    print(f"PASS {args.case} ({time.time() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
