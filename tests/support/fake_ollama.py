"""A fake Ollama upstream: a real HTTP/1.1 server on loopback, as strict as Ollama bound to localhost.

- Answers 403 with an empty body to a Host header that is not a loopback name (so a proxy that forgets to
  rewrite Host fails, exactly as against a real Ollama).
- Streams NDJSON (native) and SSE (/v1) with chunked encoding, one line per HTTP chunk, on a schedule:
  line i is written at t0 + i * delay. Knobs come from the request's `options` (or top-level for /v1):
  `fake_delay_ms`, `num_predict`/`max_tokens` (lines), `fake_break_after` (close the socket mid-stream),
  `fake_error_after` (send Ollama's mid-stream `{"error": ...}` line), `fake_status` (answer that status),
  `fake_first_byte_delay_ms` (silence before the headers), `fake_eval_duration_ns` (the final line's
  eval_duration; by default seconds, as a real generation reports).
- Answers 404 `model 'x' not found` for models it does not list.
- Records every request (method, path, query, headers, body), every stream the client abandoned, and counts
  the connections it accepted.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
EVAL_DURATION_NS = 2_600_000_000  # what every generation reports as eval_duration

DEFAULT_MODELS = [
    {"name": "llama3.2:1b", "family": "llama", "parameter_size": "1.2B", "capabilities": ["completion", "tools"]},
    {"name": "qwen2.5-coder:7b", "family": "qwen2", "parameter_size": "7.6B", "capabilities": ["completion", "tools"]},
    {"name": "nomic-embed-text:latest", "family": "nomic-bert", "parameter_size": "137M",
     "capabilities": ["embedding"]},
]


def _norm(name: str) -> str:
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000000Z"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes
    at: float


@dataclass
class FakeState:
    name: str
    models: list = field(default_factory=lambda: [dict(m) for m in DEFAULT_MODELS])
    received: list = field(default_factory=list)
    abandoned: list = field(default_factory=list)  # (path, time) of streams whose client went away
    blobs: dict = field(default_factory=dict)
    loaded: set = field(default_factory=set)
    connections: int = 0  # TCP connections accepted: keep-alive reuse shows as few
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy: bool = False  # answer inference with Ollama's instant 503 "server busy" (its queue is full)
    active: dict = field(default_factory=dict)  # normalised model -> generations running now
    max_active: dict = field(default_factory=dict)  # normalised model -> the most that ever ran at once
    open_sockets: set = field(default_factory=set)  # open client sockets (kill() closes them)

    def has_model(self, name: str | None) -> bool:
        return bool(name) and any(_norm(m["name"]) == _norm(name) for m in self.models)

    def model(self, name: str) -> dict | None:
        return next((m for m in self.models if _norm(m["name"]) == _norm(name)), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama"
    # Headers and body go out in separate writes; with Nagle on, the second waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    state: FakeState  # set per server class

    def log_message(self, *args):  # keep test output quiet
        pass

    def setup(self):
        super().setup()
        with self.state.lock:
            self.state.connections += 1
            self.state.open_sockets.add(self.connection)

    def finish(self):
        with self.state.lock:
            self.state.open_sockets.discard(self.connection)
        super().finish()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json; charset=utf-8"):
        self.send_response(status)
        if body or status not in (200, 201, 204):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode())

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in LOOPBACK_HOSTS

    def _dispatch(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        with self.state.lock:
            self.state.received.append(Received(self.command, path, query, dict(self.headers.items()), body[:4096],
                                                time.time()))
        if not self._host_ok():
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        handler = ROUTES.get((self.command if self.command != "HEAD" else "GET", path))
        if handler is None and path.startswith("/api/blobs/"):
            handler = _Handler.blob
        if handler is None and path.startswith("/v1/models/") and self.command == "GET":
            handler = _Handler.v1_model
        if handler is None:
            self._send(404, b"404 page not found", "text/plain")
            return
        try:
            handler(self, body)
        except (BrokenPipeError, ConnectionResetError):
            with self.state.lock:
                self.state.abandoned.append((path, time.time()))
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_HEAD = _dispatch

    # -- endpoints --------------------------------------------------------------------------------------

    def root(self, _body):
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def version(self, _body):
        self._json(200, {"version": f"0.12.0-{self.state.name}"})

    def tags(self, _body):
        self._json(200, {"models": [self._tag(m) for m in self.state.models]})

    def _tag(self, m: dict) -> dict:
        return {"name": m["name"], "model": m["name"], "modified_at": "2026-01-01T00:00:00Z", "size": 1000,
                "digest": hashlib.sha256(m["name"].encode()).hexdigest(),
                "details": {"parent_model": "", "format": "gguf", "family": m["family"], "families": [m["family"]],
                            "parameter_size": m["parameter_size"], "quantization_level": "Q4_K_M"}}

    def ps(self, _body):
        models = [dict(self._tag(m), size_vram=1000, expires_at="2099-01-01T00:00:00Z", context_length=4096)
                  for m in self.state.models if _norm(m["name"]) in self.state.loaded]
        self._json(200, {"models": models})

    def show(self, body):
        req = self._parse(body)
        if req is None:
            return
        name = req.get("model") or req.get("name")
        if not name:
            return self._json(400, {"error": "model is required"})
        model = self.state.model(name)
        if model is None:
            return self._json(404, {"error": f"model '{_norm(name)}' not found"})
        self._json(200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}", "details":
                         self._tag(model)["details"], "model_info": {"general.architecture": model["family"]},
                         "capabilities": model["capabilities"], "modified_at": "2026-01-01T00:00:00Z"})

    def _parse(self, body: bytes):
        if not body:
            self._json(400, {"error": "missing request body"})
            return None
        try:
            return json.loads(body)
        except ValueError as exc:
            self._json(400, {"error": str(exc)})
            return None

    def generate(self, body):
        self._inference(body, chat=False)

    def chat(self, body):
        self._inference(body, chat=True)

    def _inference(self, body: bytes, chat: bool):
        req = self._parse(body)
        if req is None:
            return
        options = req.get("options") or {}
        name = req.get("model")
        if chat and not name:
            return self._json(400, {"error": "model is required"})
        if "fake_first_byte_delay_ms" in options:
            time.sleep(options["fake_first_byte_delay_ms"] / 1000)
        if "fake_status" in options:
            return self._json(int(options["fake_status"]), {"error": f"fake failure from {self.state.name}"})
        if not self.state.has_model(name):
            return self._json(404, {"error": f"model '{name or ''}' not found"})
        if self.state.busy:
            return self._json(503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
        key = _norm(name)
        with self.state.lock:
            self.state.loaded.add(key)
            self.state.active[key] = self.state.active.get(key, 0) + 1
            self.state.max_active[key] = max(self.state.max_active.get(key, 0), self.state.active[key])
        self._running = key
        try:
            self._generate(req, chat, name, options)
        finally:
            self._generation_done()

    def _generation_done(self) -> None:
        """The slot frees as the last line goes out (as in Ollama), not when this thread gets round to it."""
        key, self._running = getattr(self, "_running", None), None
        if key is not None:
            with self.state.lock:
                self.state.active[key] -= 1

    def _generate(self, req: dict, chat: bool, name: str, options: dict):
        empty = not req.get("messages") if chat else not req.get("prompt")
        base = {"model": name, "created_at": _now()}
        if empty:
            return self._json(200, dict(base, response="", done=True, done_reason="load") if not chat else
                              dict(base, message={"role": "assistant", "content": ""}, done=True, done_reason="load"))
        lines = int(options.get("num_predict", 5))
        delay = float(options.get("fake_delay_ms", self.headers.get("X-Fake-Delay-Ms", 0))) / 1000
        words = [f"{self.state.name}-{i} " for i in range(lines)]

        def piece(text):
            if chat:
                return dict(base, message={"role": "assistant", "content": text}, done=False)
            return dict(base, response=text, done=False)

        # Durations in nanoseconds, of the size a real generation reports (seconds: well past 2**31 ns).
        final = dict(base, done=True, done_reason="stop", total_duration=3_100_000_000,
                     load_duration=150_000_000, prompt_eval_count=3, prompt_eval_duration=450_000_000,
                     eval_count=lines, eval_duration=int(options.get("fake_eval_duration_ns", EVAL_DURATION_NS)))
        if req.get("stream", True) is False:
            text = "".join(words)
            final.update({"message": {"role": "assistant", "content": text}} if chat else {"response": text})
            return self._json(200, final)
        final.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
        self._start_stream("application/x-ndjson")
        t0 = time.monotonic()
        for i, word in enumerate(words):
            wait = t0 + i * delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if options.get("fake_break_after") == i:
                self.wfile.flush()
                self.connection.shutdown(2)  # abrupt: no terminating chunk
                self.close_connection = True
                return
            if options.get("fake_error_after") == i:
                self._chunk(json.dumps({"error": "fake runner crashed"}).encode() + b"\n")
                return self._end_stream()
            self._chunk(json.dumps(dict(piece(word), emitted_at=time.time())).encode() + b"\n")
        wait = t0 + lines * delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._generation_done()
        self._chunk(json.dumps(final).encode() + b"\n")
        self._end_stream()

    def embed(self, body):
        req = self._parse(body)
        if req is None:
            return
        if not self.state.has_model(req.get("model")):
            return self._json(404, {"error": f"model \"{req.get('model')}\" not found, try pulling it first"})
        inputs = req.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        self._json(200, {"model": req["model"], "embeddings": [[0.6, 0.8] for _ in inputs],
                         "total_duration": 2_300_000_000, "load_duration": 2_100_000_000,
                         "prompt_eval_count": len(inputs)})

    def embeddings(self, body):
        req = self._parse(body)
        if req is None:
            return
        if not self.state.has_model(req.get("model")):
            return self._json(404, {"error": f"model \"{req.get('model')}\" not found, try pulling it first"})
        self._json(200, {"embedding": [0.1, 0.2, 0.3]})

    def pull(self, body):
        req = self._parse(body)
        if req is None:
            return
        name = req.get("model") or req.get("name")
        steps = [{"status": "pulling manifest"}, {"status": "pulling abc123def456", "digest": "sha256:abc",
                                                  "total": 100, "completed": 50},
                 {"status": "pulling abc123def456", "digest": "sha256:abc", "total": 100, "completed": 100},
                 {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
        if req.get("stream", True) is False:
            if name == "does-not-exist":
                return self._json(500, {"error": "pull model manifest: file does not exist"})
            self.state.models.append({"name": name, "family": "llama", "parameter_size": "1B",
                                      "capabilities": ["completion"]})
            return self._json(200, {"status": "success"})
        self._start_stream("application/x-ndjson")
        for step in steps:
            self._chunk(json.dumps(step).encode() + b"\n")
        self._end_stream()
        self.state.models.append({"name": name, "family": "llama", "parameter_size": "1B",
                                  "capabilities": ["completion"]})

    def copy(self, body):
        req = self._parse(body)
        if req is None:
            return
        source = self.state.model(req.get("source") or "")
        if source is None:
            return self._json(404, {"error": f"model \"{req.get('source')}\" not found"})
        self.state.models.append(dict(source, name=req["destination"]))
        self._send(200)

    def delete(self, body):
        req = self._parse(body)
        if req is None:
            return
        name = req.get("model") or req.get("name")
        model = self.state.model(name or "")
        if model is None:
            return self._json(404, {"error": f"model '{name}' not found"})
        self.state.models.remove(model)
        self._send(200)

    def blob(self, body):
        digest = self.path.rsplit("/", 1)[-1].split("?")[0]
        if not digest.startswith("sha256:") or len(digest) != 71:
            return self._json(400, {"error": "invalid digest format"})
        if self.command == "HEAD":
            return self._send(200 if digest in self.state.blobs else 404)
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            return self._json(400, {"error": f'digest mismatch, expected "{digest}", got "{actual}"'})
        existed = digest in self.state.blobs
        self.state.blobs[digest] = len(body)
        self._send(200 if existed else 201)

    def v1_models(self, _body):
        self._json(200, {"object": "list", "data": [
            {"id": m["name"], "object": "model", "created": 1767225600, "owned_by": "library"}
            for m in self.state.models]})

    def v1_model(self, _body):
        name = self.path[len("/v1/models/"):]
        if not self.state.has_model(name):
            return self._json(404, {"error": {"message": f"model '{name}' not found", "type": "not_found_error",
                                              "param": None, "code": None}})
        self._json(200, {"id": name, "object": "model", "created": 1767225600, "owned_by": "library"})

    def v1_chat(self, body):
        req = self._parse(body)
        if req is None:
            return
        if "fake_status" in req:
            return self._json(int(req["fake_status"]), {"error": {"message": "fake failure", "type": "api_error",
                                                                  "param": None, "code": None}})
        if not req.get("messages"):
            return self._json(400, {"error": {"message": "[] is too short - 'messages'",
                                              "type": "invalid_request_error", "param": None, "code": None}})
        if not self.state.has_model(req.get("model")):
            return self._json(404, {"error": {"message": f"model '{req.get('model')}' not found",
                                              "type": "not_found_error", "param": None, "code": None}})
        if self.state.busy:
            return self._json(503, {"error": {"message": "server busy, please try again.  maximum pending requests "
                                              "exceeded", "type": "api_error", "param": None, "code": None}})
        lines = int(req.get("max_tokens") or 5)
        delay = float(req.get("fake_delay_ms", 0)) / 1000
        words = [f"{self.state.name}-{i} " for i in range(lines)]
        base = {"id": "chatcmpl-1", "created": int(time.time()), "model": req["model"],
                "system_fingerprint": "fp_ollama"}
        usage = {"prompt_tokens": 3, "completion_tokens": lines, "total_tokens": lines + 3}
        if not req.get("stream"):
            return self._json(200, dict(base, object="chat.completion", choices=[
                {"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop"}],
                usage=usage))
        self._start_stream("text/event-stream")
        for i, word in enumerate(words):
            if delay:
                time.sleep(delay)
            if req.get("fake_break_after") == i:
                self.connection.shutdown(2)
                self.close_connection = True
                return
            chunk = dict(base, object="chat.completion.chunk", choices=[
                {"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": None}])
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self._chunk(b"data: " + json.dumps(dict(base, object="chat.completion.chunk", choices=[
            {"index": 0, "delta": {}, "finish_reason": "stop"}])).encode() + b"\n\n")
        if (req.get("stream_options") or {}).get("include_usage"):
            self._chunk(b"data: " + json.dumps(dict(base, object="chat.completion.chunk", choices=[],
                                                    usage=usage)).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()


ROUTES = {
    ("GET", "/"): _Handler.root,
    ("GET", "/api/version"): _Handler.version,
    ("GET", "/api/tags"): _Handler.tags,
    ("GET", "/api/ps"): _Handler.ps,
    ("POST", "/api/show"): _Handler.show,
    ("POST", "/api/generate"): _Handler.generate,
    ("POST", "/api/chat"): _Handler.chat,
    ("POST", "/api/embed"): _Handler.embed,
    ("POST", "/api/embeddings"): _Handler.embeddings,
    ("POST", "/api/pull"): _Handler.pull,
    ("POST", "/api/copy"): _Handler.copy,
    ("DELETE", "/api/delete"): _Handler.delete,
    ("GET", "/v1/models"): _Handler.v1_models,
    ("POST", "/v1/chat/completions"): _Handler.v1_chat,
}


class FakeOllama:
    """Start with `FakeOllama(name).start()`; `url`, `port`, `state` for assertions; `stop()` at the end."""

    def __init__(self, name: str = "ollama", models: list | None = None, host: str = "127.0.0.1", port: int = 0):
        self.state = FakeState(name=name)
        if models is not None:
            self.state.models = [dict(m) for m in models]
        handler = type(f"Handler_{name}", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"fake-{name}", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeOllama":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kill(self) -> None:
        """Die like a crashed server: stop listening and drop every open connection, keep-alive ones too."""
        import socket

        self.stop()
        with self.state.lock:
            sockets = list(self.state.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests_to(self, path: str) -> list[Received]:
        with self.state.lock:
            return [r for r in self.state.received if r.path == path]

    def reset(self) -> None:
        with self.state.lock:
            self.state.received.clear()
            self.state.abandoned.clear()
