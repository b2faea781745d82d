"""A local OpenAI-compatible HTTP server for tests: real HTTP, predictable answers.

Serves ``POST /v1/chat/completions`` (plain, and ``stream=true`` as server-sent
events, with a final usage chunk when ``stream_options.include_usage``) and
``POST /v1/embeddings`` (``encoding_format`` float or base64, as the ``openai``
client asks by default).

What it answers is fixed so tests can predict it:

* the reply to a chat is ``"Echo: "`` and the last message's text;
* tokens are words (split on white space): a prompt counts its messages' words
  plus 3 per message, a completion its reply's words;
* an embedding is ``dimensions`` (default 8) floats derived from the text;
* a model named ``error-<status>`` (``error-429``, ``error-500``) is answered
  with that HTTP status and an OpenAI-style error body.

Every request body is kept in ``FakeOpenAI.requests`` for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "chat_usage", "embedding", "reply_to"]

CREATED = 1_767_225_600


def _words(text: str) -> int:
    return len(text.split())


def _text(content: Any) -> str:
    """The text of a message's content: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The assistant's reply to ``messages``."""
    return "Echo: " + (_text(messages[-1].get("content")) if messages else "")


def chat_usage(messages: list[dict[str, Any]]) -> dict[str, int]:
    """The usage block of the answer to ``messages``."""
    prompt = sum(_words(_text(m.get("content"))) + 3 for m in messages)
    completion = _words(reply_to(messages))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def embedding(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic unit-free vector for ``text``, values in [-1, 1)."""
    digest = hashlib.sha256(text.encode()).digest()
    while len(digest) < dimensions:
        digest += hashlib.sha256(digest).digest()
    # Multiples of 1/128 survive float32 exactly, so base64 and float agree.
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        try:
            body = self._body()
            self.server.owner.requests.append({"path": self.path, "body": body})
            if self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path == "/v1/embeddings":
                self._embeddings(body)
            else:
                raise _BadRequest(404, f"no such endpoint: POST {self.path}", "not_found")
        except _BadRequest as exc:
            self._json(exc.status, {"error": {"message": str(exc), "type": exc.kind}})

    def do_GET(self) -> None:
        self._json(
            404, {"error": {"message": f"no such endpoint: GET {self.path}", "type": "not_found"}}
        )

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _BadRequest(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest(400, "the body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(400, "'model' is required")
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            raise _BadRequest(status, f"injected failure {status}", kind)
        return body

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chat(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise _BadRequest(400, "'messages' must be a list of message objects")
        reply = reply_to(messages)
        usage = chat_usage(messages)
        ident = f"chatcmpl-{self.server.owner.next_id()}"
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply, "refusal": None},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_fake",
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            extra = {"usage": None} if include_usage else {}
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**base, "choices": [choice], **extra}

        words = reply.split(" ")
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any]) -> None:
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not inputs:
            raise _BadRequest(400, "'input' must be a string or a non-empty list")
        texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
        dimensions = body.get("dimensions", 8)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            raise _BadRequest(400, "'dimensions' must be an integer from 1 to 4096")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _BadRequest(400, "'encoding_format' must be float or base64")
        data = []
        for index, text in enumerate(texts):
            vector: Any = embedding(text, dimensions)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(_words(text) for text in texts)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeOpenAI


class FakeOpenAI:
    """The server, listening on 127.0.0.1 (a free port) from ``start()`` to ``stop()``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._ids = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """What the ``openai`` client takes as ``base_url`` (ends in ``/v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def next_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"{self._ids:06d}"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
