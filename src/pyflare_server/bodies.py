"""Reading a request body within a size limit and a deadline, decompressing it on the way.

The OTLP/HTTP receiver and the query API's uploads read bodies the same way:
``Content-Length`` past the limit is refused before reading; the body must
arrive within ``timeout_s`` (a client that sends slowly holds nothing for
long); ``Content-Encoding: gzip`` or ``deflate`` is inflated as it arrives and
the limit counts the inflated bytes, so a decompression bomb is cut off at
``max_bytes + 1`` rather than inflated whole. Each failure is a
:class:`BodyError` with the HTTP status it calls for; callers turn it into
their own error format.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING

from pyflare.errors import PyFlareError

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["BodyError", "read_body"]


class BodyError(PyFlareError):
    """A request body that can't be read: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _too_large(max_bytes: int) -> BodyError:
    return BodyError(
        413,
        f"the body is larger than {max_bytes} bytes (the limit of {max_bytes} bytes counts "
        "the body after decompression); send smaller batches",
    )


def _decompressor(request: Request) -> zlib._Decompress | None:
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj()
    raise BodyError(
        415, f"unsupported Content-Encoding {coding!r}: send gzip, deflate or no encoding"
    )


async def read_body(request: Request, *, max_bytes: int, timeout_s: float) -> bytes:
    """The request's body, decompressed, at most ``max_bytes`` and within ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)  # even compressed it is already past the limit
    decompressor = _decompressor(request)
    parts: list[bytes] = []
    size = 0  # bytes of body, after decompression
    raw = 0  # bytes received
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                raw += len(chunk)
                if decompressor is None:
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    parts.append(chunk)
                    continue
                data = chunk
                while data:
                    # Inflate at most what still fits, plus one byte to see it overflow.
                    try:
                        out = decompressor.decompress(data, max_bytes - size + 1)
                    except zlib.error as exc:
                        raise BodyError(400, f"the body is not valid gzip: {exc}") from None
                    size += len(out)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    parts.append(out)
                    data = decompressor.unconsumed_tail
                    if decompressor.eof:
                        break
    except TimeoutError:
        raise BodyError(408, f"the request body did not arrive within {timeout_s:g} s") from None
    if decompressor is not None and raw and not decompressor.eof:
        raise BodyError(400, "the compressed body is truncated")
    return b"".join(parts)
