"""A tiny OTLP/HTTP traces sink on 127.0.0.1 for the benchmarks.

It accepts ``POST /v1/traces`` (PyFlare and plain OTel exporters) and
``POST /api/public/otel/v1/traces`` (where Langfuse v3+ sends OTLP), answers
``200`` with an empty ``ExportTraceServiceResponse`` (zero bytes of protobuf),
and counts requests, bytes and spans per path so the bench can check that every
span really arrived. ``GET /stats`` returns the counters as JSON and
``POST /reset`` zeroes them. Any other path gets a 404 and is counted too.

Run it as its own process so parsing and answering requests doesn't compete
with the measured code for the GIL::

    python bench/_sink.py            # prints "PORT <n>" once listening, then serves
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACE_PATHS = frozenset({"/v1/traces", "/api/public/otel/v1/traces"})
EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()  # b""

_lock = threading.Lock()
_counters: Counter[str] = Counter()


def _count_spans(body: bytes) -> int:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OTLP exporters expect

    def log_message(self, format: str, *args: object) -> None:
        return None  # one line per request would cost more than the request

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path == "/reset":
            with _lock:
                _counters.clear()
            self._reply(200, b"{}", "application/json")
            return
        if path not in TRACE_PATHS:
            with _lock:
                _counters["unexpected_requests"] += 1
            self._reply(404, b"not found", "text/plain")
            return
        try:
            spans = _count_spans(_decode(body, self.headers.get("Content-Encoding", "")))
        except Exception:
            with _lock:
                _counters[f"{path} bad_requests"] += 1
            self._reply(400, b"bad payload", "text/plain")
            return
        with _lock:
            _counters[f"{path} requests"] += 1
            _counters[f"{path} bytes"] += length
            _counters[f"{path} spans"] += spans
        self._reply(200, EMPTY_RESPONSE, "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path != "/stats":
            with _lock:
                _counters["unexpected_requests"] += 1
            self._reply(404, b"not found", "text/plain")
            return
        with _lock:
            body = json.dumps(dict(_counters)).encode()
        self._reply(200, body, "application/json")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
