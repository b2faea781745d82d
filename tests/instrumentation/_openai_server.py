"""A local OpenAI-compatible HTTP server for the instrumentation tests.

Real HTTP for the real ``openai`` client, with predictable answers:

* ``POST /v1/chat/completions``: the reply is ``"Echo: "`` + the last message's
  text; with ``tools`` given and a last message starting ``call ``, the reply is a
  call of the first tool with arguments ``{"q": <rest of the message>}``
  (finish reason ``tool_calls``). Streams as server-sent events, with a final usage
  chunk when ``stream_options.include_usage``.
* ``POST /v1/responses``: the same reply as a Responses API response (or its event
  stream: created, output_text deltas, completed).
* ``POST /v1/embeddings``: ``dimensions`` (default 4) numbers per input.

Tokens are words (split on white space); a prompt counts 3 more per message.
Usage reports ``cached`` cached prompt tokens and ``reasoning`` reasoning tokens
(both set on the server object, 0 by default). ``fail_next`` is a list of HTTP
statuses answered, one per request, before answering normally (``[429]`` makes the
client retry once). Every request body is kept in ``requests``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_767_225_600


def words(text: str) -> int:
    return len(text.split())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes go out at once (no 40 ms ACK waits)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        # A client that walked away from a stream (what some tests do) is no error.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        owner.requests.append({"path": self.path, "body": body})
        status = owner.take_failure()
        if status is not None:
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            headers = {"retry-after-ms": "1"} if status == 429 else {}
            self._json(status, {"error": {"message": f"injected {status}", "type": kind}}, headers)
            return
        path = self.path.split("?")[0]  # Azure adds ?api-version=...
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif path.endswith("/responses"):
            self._responses(body)
        elif path.endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._json(404, {"error": {"message": f"no {self.path}", "type": "not_found"}})

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _events(self, events: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [*events, "data: [DONE]\n\n", ""]:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _answer(self, messages: list[dict[str, Any]], tools: Any) -> tuple[str, dict | None]:
        last = _text(messages[-1].get("content")) if messages else ""
        if tools and last.startswith("call "):
            tool = tools[0]
            name = tool.get("function", tool).get("name")
            return "", {"id": "call_1", "name": name, "arguments": json.dumps({"q": last[5:]})}
        return "Echo: " + last, None

    def _usage(self, prompt: int, completion: int, style: str) -> dict[str, Any]:
        owner = self.server.owner
        if style == "chat":
            return {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": owner.cached},
                "completion_tokens_details": {"reasoning_tokens": owner.reasoning},
            }
        return {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": owner.cached},
            "output_tokens_details": {"reasoning_tokens": owner.reasoning},
        }

    def _chat(self, body: dict[str, Any]) -> None:
        messages = body["messages"]
        reply, call = self._answer(messages, body.get("tools"))
        prompt = sum(words(_text(m.get("content"))) + 3 for m in messages)
        completion = words(reply) + (words(call["arguments"]) if call else 0)
        usage = self._usage(prompt, completion, "chat")
        ident = f"chatcmpl-{self.server.owner.next_id()}"
        finish = "tool_calls" if call else "stop"
        tool_calls = (
            [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ]
            if call
            else None
        )
        base = {"id": ident, "created": CREATED, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply or None, "tool_calls": tool_calls}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            payload = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            self._json(200, payload)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
            event = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            return f"data: {json.dumps(event)}\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        if call:
            first = {"index": 0, "id": call["id"], "type": "function"}
            first["function"] = {"name": call["name"], "arguments": ""}
            events.append(chunk({"tool_calls": [first]}))
            half = len(call["arguments"]) // 2
            for piece in (call["arguments"][:half], call["arguments"][half:]):
                events.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
        else:
            events += [
                chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(reply.split(" "))
            ]
        events.append(chunk({}, finish))
        if include_usage:
            event = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append(f"data: {json.dumps(event)}\n\n")
        self._events(events)

    def _responses(self, body: dict[str, Any]) -> None:
        given = body.get("input")
        messages = [{"content": given}] if isinstance(given, str) else list(given or [])
        reply, call = self._answer(messages, body.get("tools"))
        prompt = sum(words(_text(m.get("content"))) + 3 for m in messages)
        completion = words(reply)
        ident = f"resp_{self.server.owner.next_id()}"
        output: list[dict[str, Any]] = []
        if call:
            output.append(
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": call["id"],
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "status": "completed",
                }
            )
        else:
            text = {"type": "output_text", "text": reply, "annotations": []}
            output.append(
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [text],
                }
            )
        response = {
            "id": ident,
            "object": "response",
            "created_at": CREATED,
            "model": body["model"],
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": self._usage(prompt, completion, "responses"),
        }
        if not body.get("stream"):
            self._json(200, response)
            return
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        events = [{"type": "response.created", "response": started, "sequence_number": 0}]
        for i, word in enumerate(reply.split(" ") if reply else []):
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": word if i == 0 else " " + word,
                    "sequence_number": i + 1,
                    "logprobs": [],
                }
            )
        events.append({"type": "response.completed", "response": response, "sequence_number": 99})
        self._events([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events])

    def _embeddings(self, body: dict[str, Any]) -> None:
        given = body["input"]
        texts = [given] if isinstance(given, str) else given
        dimensions = body.get("dimensions", 4)
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5] * dimensions}
            for i, _ in enumerate(texts)
        ]
        tokens = sum(words(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._json(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAIServer


class OpenAIServer:
    """The server on 127.0.0.1 (a free port) between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []
        self.cached = 0
        self.reasoning = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._ids = 0
        self._lock = threading.Lock()

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What the ``openai`` client takes as ``base_url``."""
        return self.root + "/v1"

    def next_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"{self._ids:06d}"

    def take_failure(self) -> int | None:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
