"""Content capture: a bounded, stable text rendering of a call's inputs and output.

`render` and `render_arguments` turn any Python value into a short preview plus a
digest of the whole value. They run on every decorated call, so common values (a
string, a dict of a few strings) take microseconds, and pathological ones (a 10 MB
string, a million-element list, a cycle, an object whose ``__repr__`` raises) stay
bounded in time and memory and never raise.

The rendering
    A lone ``str`` renders as itself. Everything else renders as compact JSON: dict
    keys sorted (the top level of `render_arguments` keeps parameter order), sets
    sorted by their items' renderings, dataclasses (fields with ``repr=False`` left
    out), namedtuples and objects with a ``model_dump()`` (pydantic v2) as objects of
    their fields, enums by value, dates and times in ISO 8601, ``Decimal``/``UUID``/
    paths/timedeltas as strings, floats in orjson's shortest round-trip form with
    ``NaN``/``Infinity``/``-Infinity`` for non-finite ones, bytes as ``<bytes len=N
    blake2b=H>``, array-likes (anything whose type has ``shape`` and ``dtype``, such
    as numpy arrays, pandas and torch objects) as ``<ndarray shape=(3, 4)
    dtype=float32>`` (0-d ones as their number), and any other object as its repr,
    cut to 500 characters, with `` at 0x…`` addresses removed. A value that is not a
    str but converts to one (a datetime, bytes, an object's repr) renders as that
    text, unquoted.

Budgets
    One rendering holds about 10,000 values, 1 Mi characters of string content and
    32 levels of nesting. Past them:

    * a string longer than 64 characters keeps what is left of the character budget
      and ends with ``…<+N chars blake2b=H>``, H being the blake2b-128 of the whole
      string, so the digest still covers all of it,
    * a list, tuple or dict keeps the items that fit and ends with ``<+N more
      items>`` (a dict larger than the remaining budget keeps its first items in
      iteration order),
    * a set larger than the remaining budget renders as ``<set len=N>``,
    * a container nested too deep renders as ``<list nested too deep>``, and one that
      contains itself renders the inner reference as ``<recursive list>``,
    * the full-content hashes of cut strings and of bytes stop after 64 Mi
      characters/bytes per rendering; later markers give only the length
      (``…<+N chars>``, ``<bytes len=N>``), which bounds the time on inputs that are
      huge in total.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import logging
import pathlib
import re
import reprlib
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from operator import itemgetter
from types import MappingProxyType

import orjson

from pyflare.errors import InvalidArgumentError

__all__ = ["Rendered", "render", "render_arguments", "render_preview"]

logger = logging.getLogger(__name__)

_MAX_NODES = 10_000
_MAX_TEXT = 1 << 20
_SHORT_TEXT = 64  # no longer than a cut string's marker, so always kept whole
_MAX_HASHED = 64 << 20  # characters of cut strings hashed per rendering: bounds the time
_MAX_DEPTH = 32
_MAX_REPR = 500
_MAX_INT_BITS = 4_000  # well under CPython's 4,300-digit limit on int -> str
_HASH_CHUNK = 1 << 20  # characters encoded at a time, so hashing a str holds 4 MiB at most
_DIGEST_SIZE = 16

_I64_MIN = -(1 << 63)
_U64_END = 1 << 64
_NONE_TYPE = type(None)
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Rendered:
    """A preview of a value plus a digest of all of it."""

    preview: str
    """The first ``max_chars`` characters of the rendering; not yet masked."""
    digest: str
    """32 hex digits identifying the whole value; see the module docstring."""
    truncated: bool
    """True when `preview` is shorter than the rendering."""


def render(value: object, *, max_chars: int = 1000) -> Rendered:
    """Render one value (a call's return value, say) for a span.

    The digest is a blake2b (16 bytes, hex) of a one-byte tag (``t`` when the
    rendering is plain text, ``j`` when it is JSON) followed by the UTF-8 of the whole
    rendering (lone surrogates kept). A lone str is hashed in full whatever its
    length; inside structures the budget rules in the module docstring apply, which
    still cover every string's and bytes' full content through their markers.

    Raises:
        InvalidArgumentError: ``max_chars`` is not an int >= 0.
    """
    _check_max_chars(max_chars)
    if type(value) is str:
        return _render_text(value, max_chars)
    try:
        if isinstance(value, str) and not isinstance(value, enum.Enum):
            return _render_text(str.__str__(value), max_chars)
        rendering = _rendering(value)
        if isinstance(rendering, str):
            return _render_text(rendering, max_chars)
        return _render_json(rendering, max_chars)
    except Exception:
        logger.debug(
            "rendering %s failed; falling back to its repr", _type_name(value), exc_info=True
        )
        return _render_text(_safe_repr(value), max_chars)


def render_preview(value: object, *, max_chars: int = 1000) -> str:
    """Only the preview of `render` (no digest): what outputs need, for less work."""
    if type(value) is str:
        preview = value[:max_chars]
        if len(value) > max_chars and max_chars and _splits_pair(value, max_chars):
            preview = preview[:-1]
        return preview if preview.isascii() else _encodable(preview, max_chars)
    return render(value, max_chars=max_chars).preview


def render_arguments(arguments: Mapping[str, object], *, max_chars: int = 1000) -> Rendered:
    """Render a call's bound arguments (name -> value, in parameter order) as a JSON object.

    The top level keeps the mapping's order, which the function's signature fixes;
    the values are rendered and the digest computed as in `render`, with one budget
    shared by all arguments.

    Raises:
        InvalidArgumentError: ``max_chars`` is not an int >= 0.
    """
    _check_max_chars(max_chars)
    try:
        return _render_json(_arguments_rendering(arguments), max_chars)
    except Exception:
        logger.debug("rendering arguments failed; falling back to their repr", exc_info=True)
        return _render_text(_safe_repr(arguments), max_chars)


def _check_max_chars(max_chars: int) -> None:
    if type(max_chars) is not int or max_chars < 0:
        raise InvalidArgumentError(
            f"max_chars must be an int >= 0 (the preview length in characters), got {max_chars!r}"
        )


def _rendering(value: object) -> str | bytes:
    """Text (str) or JSON (bytes) for one value."""
    tree = _Normalizer().value(value, 0)
    if type(tree) is str:
        return tree
    try:
        return orjson.dumps(tree)
    except orjson.JSONEncodeError:
        # Lone surrogates are the one thing a normalized tree may hold that orjson
        # refuses; the second pass escapes them.
        tree = _Normalizer(sanitize=True).value(value, 0)
        return tree if type(tree) is str else orjson.dumps(tree)


def _arguments_rendering(arguments: Mapping[str, object]) -> bytes:
    def build(sanitize: bool) -> dict[str, object]:
        normalizer = _Normalizer(sanitize)
        out: dict[str, object] = {}
        for name, value in arguments.items():
            # The name first: it must get its share of the budget before the value.
            key = normalizer.key(name, 0)
            out[key] = normalizer.value(value, 1)
        return out

    try:
        return orjson.dumps(build(sanitize=False))
    except orjson.JSONEncodeError:
        return orjson.dumps(build(sanitize=True))


def _render_text(text: str, max_chars: int) -> Rendered:
    digest = hashlib.blake2b(b"t", digest_size=_DIGEST_SIZE)
    _update_with_text(digest, text)
    preview = text[:max_chars]
    if len(text) > max_chars and max_chars and _splits_pair(text, max_chars):
        preview = preview[:-1]
    truncated = len(preview) < len(text)
    if not preview.isascii():
        preview = _encodable(preview, max_chars)
    return Rendered(preview, digest.hexdigest(), truncated)


def _encodable(text: str, max_chars: int) -> str:
    """`text` with surrogates made valid UTF-8, which exporters require."""
    try:
        text.encode()
    except UnicodeEncodeError:
        # A round trip through UTF-16 joins surrogate pairs into the characters they
        # stand for; lone surrogates left over are escaped as \udxxx.
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return joined.encode("utf-8", "backslashreplace").decode()[:max_chars]
    return text


def _render_json(data: bytes, max_chars: int) -> Rendered:
    digest = hashlib.blake2b(b"j", digest_size=_DIGEST_SIZE)
    digest.update(data)
    if len(data) <= max_chars:
        return Rendered(data.decode(), digest.hexdigest(), False)
    head = data[:max_chars]
    if head.isascii():
        # Each byte is one character, and at least one more follows.
        return Rendered(head.decode(), digest.hexdigest(), True)
    # A character takes at most 4 bytes, so this prefix holds max_chars whole
    # characters whenever the rendering has that many; "ignore" drops only a
    # character cut at the end.
    cut = 4 * max_chars
    text = data[:cut].decode("utf-8", "ignore")
    truncated = len(text) > max_chars or len(data) > cut
    return Rendered(text[:max_chars], digest.hexdigest(), truncated)


def _splits_pair(text: str, end: int) -> bool:
    return "\ud800" <= text[end - 1] <= "\udbff" and "\udc00" <= text[end] <= "\udfff"


def _update_with_text(digest: hashlib.blake2b, text: str) -> None:
    # surrogatepass encodes code point by code point, so chunking by characters
    # gives exactly the bytes of encoding the whole string at once.
    if len(text) <= _HASH_CHUNK:
        digest.update(text.encode("utf-8", "surrogatepass"))
        return
    for start in range(0, len(text), _HASH_CHUNK):
        digest.update(text[start : start + _HASH_CHUNK].encode("utf-8", "surrogatepass"))


def _text_digest(text: str) -> str:
    digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    _update_with_text(digest, text)
    return digest.hexdigest()


def _type_name(value: object) -> str:
    try:
        return str(type(value).__name__)
    except Exception:
        return "object"


def _float(value: float) -> object:
    if value - value == 0.0:
        return value
    if value != value:
        return orjson.Fragment(b"NaN")
    return orjson.Fragment(b"Infinity" if value > 0 else b"-Infinity")


def _big_int(value: int) -> object:
    bits = value.bit_length()
    if bits <= _MAX_INT_BITS:
        return orjson.Fragment(str(value))
    size = bits // 8 + 1
    blob = value.to_bytes(size, "big", signed=True)
    return (
        f"<int bits={bits} blake2b={hashlib.blake2b(blob, digest_size=_DIGEST_SIZE).hexdigest()}>"
    )


class _BoundedRepr(reprlib.Repr):
    """reprlib with stable output: no ids, and a raising ``__repr__`` propagates."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = 200
        self.maxother = _MAX_REPR
        self.maxlong = 100

    def repr_instance(self, x: object, level: int) -> str:
        if type(x).__repr__ is object.__repr__:
            return f"<{_type_name(x)} object>"
        text = repr(x)
        return text if len(text) <= self.maxother else text[: self.maxother] + "…"


_REPR = _BoundedRepr()


def _safe_repr(value: object) -> str:
    try:
        text = _ADDRESS.sub("", _REPR.repr(value))
    except Exception:
        return f"<unrenderable {_type_name(value)}>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "…"


def _array_summary(value: object) -> str | None:
    try:
        shape = tuple(int(size) for size in islice(iter(value.shape), 33))  # type: ignore[attr-defined]
    except Exception:
        return None
    name = _type_name(value)
    if not hasattr(type(value), "dtype"):
        return f"<{name} shape={shape}>"
    return f"<{name} shape={shape} dtype={str(value.dtype)[:50]}>"  # type: ignore[attr-defined]


def _is_array_like(kind: type) -> bool:
    # Looked up on the type so that proxies answering every attribute (mocks) don't
    # count; numpy, pandas, torch and jax all define these on the class.
    return hasattr(kind, "shape") and (hasattr(kind, "dtype") or hasattr(kind, "dtypes"))


class _Normalizer:
    """Turns a value into something orjson serializes, within the budgets."""

    __slots__ = ("active", "hashable", "nodes", "sanitize", "text")

    def __init__(self, sanitize: bool = False) -> None:
        self.nodes = _MAX_NODES
        self.text = _MAX_TEXT
        self.hashable = _MAX_HASHED
        self.active: set[int] = set()
        # Set on the second pass, after orjson refused a lone surrogate.
        self.sanitize = sanitize

    def value(self, value: object, depth: int) -> object:
        self.nodes -= 1
        kind = type(value)
        if kind is str:
            return self.string(value)  # type: ignore[arg-type]
        if kind is int:
            return value if _I64_MIN <= value < _U64_END else _big_int(value)  # type: ignore[operator, arg-type]
        if kind is float:
            return _float(value)  # type: ignore[arg-type]
        if kind is bool or value is None:
            return value
        try:
            if kind is dict or kind is list or kind is tuple:
                if depth >= _MAX_DEPTH:
                    return f"<{kind.__name__} nested too deep>"
                if kind is dict:
                    return self.mapping(value, dict.items(value), len(value), depth)  # type: ignore[arg-type]
                return self.sequence(value, len(value), depth)  # type: ignore[arg-type]
            return self.other(value, kind, depth)
        except Exception:
            logger.debug("rendering a %s failed; using its repr", _type_name(value), exc_info=True)
            return self.string(_safe_repr(value))

    def string(self, text: str) -> str:
        if self.sanitize:
            text = text.encode("utf-8", "backslashreplace").decode()
        size = len(text)
        if size <= self.text or size <= _SHORT_TEXT:
            self.text -= size
            return text
        keep = max(self.text, 0)
        self.text = 0
        if size > self.hashable:
            return f"{text[:keep]}…<+{size - keep} chars>"
        self.hashable -= size
        return f"{text[:keep]}…<+{size - keep} chars blake2b={_text_digest(text)}>"

    def key(self, key: object, depth: int) -> str:
        if type(key) is str:
            return self.string(key)
        before = self.nodes
        rendered = self.value(key, depth + 1)
        # The key and its value are one item: only what is inside a key counts extra.
        self.nodes = min(before, self.nodes + 1)
        if type(rendered) is str:
            return rendered
        return orjson.dumps(rendered).decode()

    def mapping(
        self, owner: object, items: Iterable[tuple[object, object]], size: int, depth: int
    ) -> object:
        if id(owner) in self.active:
            return f"<recursive {_type_name(owner)}>"
        self.active.add(id(owner))
        try:
            if size > self.nodes:
                items = islice(items, max(self.nodes, 0))
            plain = not self.sanitize
            pairs: list[tuple[str, object]] = []
            for key, value in items:
                # Inlined `self.key` for the usual short str key: this loop is hot.
                if plain and type(key) is str and len(key) <= self.text:
                    self.text -= len(key)
                    pairs.append((key, value))
                else:
                    pairs.append((self.key(key, depth), value))
            # Visiting in key order keeps budget use independent of insertion order.
            pairs.sort(key=itemgetter(0))
            out: dict[str, object] = {}
            for index, (key, value) in enumerate(pairs):
                if self.nodes <= 0:
                    out["…"] = f"<+{size - index} more items>"
                    break
                if key in out:
                    return self.colliding(pairs, depth)
                kind = type(value)
                if plain and kind is str and len(value) <= self.text:  # type: ignore[arg-type]
                    self.nodes -= 1
                    self.text -= len(value)  # type: ignore[arg-type]
                    out[key] = value
                else:
                    out[key] = self.value(value, depth + 1)
            else:
                if len(pairs) < size:
                    out["…"] = f"<+{size - len(pairs)} more items>"
            return out
        finally:
            self.active.discard(id(owner))

    def colliding(self, pairs: list[tuple[str, object]], depth: int) -> object:
        # Distinct keys that render alike ({1: …, "1": …}) can't share a JSON object;
        # a sorted list of [key, value] pairs keeps both, deterministically.
        rows = [[key, self.value(value, depth + 1)] for key, value in pairs]
        return sorted(rows, key=lambda row: (row[0], orjson.dumps(row[1])))

    def sequence(self, items: list[object] | tuple[object, ...], size: int, depth: int) -> object:
        if size >= 8 and size <= self.nodes and not self.sanitize:
            uniform = self.uniform(items, size)
            if uniform is not None:
                return uniform
        if id(items) in self.active:
            return f"<recursive {_type_name(items)}>"
        self.active.add(id(items))
        try:
            return self.items(iter(items), size, depth)
        finally:
            self.active.discard(id(items))

    def uniform(self, items: list[object] | tuple[object, ...], size: int) -> object | None:
        # Long lists of one scalar type (embeddings, token ids) are checked with C
        # loops instead of one Python call per item.
        kinds = set(map(type, items))
        if len(kinds) != 1:
            return None
        kind = kinds.pop()
        if kind is float:
            total = sum(items)  # type: ignore[arg-type]
            if total - total != 0.0:
                return None
        elif kind is int:
            if min(items) < _I64_MIN or max(items) >= _U64_END:  # type: ignore[type-var, operator]
                return None
        elif kind is str:
            length = sum(map(len, items))  # type: ignore[arg-type]
            if length > self.text:
                return None
            self.text -= length
        elif kind is not bool and kind is not _NONE_TYPE:
            return None
        self.nodes -= size
        return items

    def items(self, iterator: Iterator[object], size: int, depth: int) -> list[object]:
        out: list[object] = []
        plain = not self.sanitize
        for index, item in enumerate(iterator):
            if self.nodes <= 0:
                out.append(f"<+{size - index} more items>")
                break
            # Inlined `self.value` for the usual short str item: this loop is hot.
            if plain and type(item) is str and len(item) <= self.text:
                self.nodes -= 1
                self.text -= len(item)
                out.append(item)
            else:
                out.append(self.value(item, depth + 1))
        return out

    def other(self, value: object, kind: type, depth: int) -> object:
        if isinstance(value, enum.Enum):
            return self.value(value.value, depth + 1)
        if isinstance(value, str):
            return self.string(str.__str__(value))
        if isinstance(value, bool | int | float):
            return self.value(_plain(value), depth)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.string(self.bytes_marker(value))
        if isinstance(value, datetime.date | datetime.time):
            return self.string(value.isoformat())
        if isinstance(value, datetime.timedelta | decimal.Decimal | uuid.UUID | pathlib.PurePath):
            return self.string(str(value))
        container = (
            isinstance(value, dict | list | tuple | set | frozenset | deque | MappingProxyType)
            or dataclasses.is_dataclass(value)
            or callable(getattr(kind, "model_dump", None))
        )
        if container and depth >= _MAX_DEPTH:
            return f"<{_type_name(value)} nested too deep>"
        if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
            names = [str(name) for name in kind._fields]  # type: ignore[attr-defined]
            return self.mapping(
                value, zip(names, tuple.__iter__(value), strict=False), len(names), depth
            )
        if isinstance(value, dict):
            return self.mapping(value, dict.items(value), dict.__len__(value), depth)
        if isinstance(value, MappingProxyType):
            return self.mapping(value, value.items(), len(value), depth)
        if isinstance(value, list | tuple | deque):
            return self.nested_items(value, depth)
        if isinstance(value, set | frozenset):
            return self.unordered(value, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Fields kept out of the repr are usually secrets or bulk; keep them out here too.
            names = [field.name for field in dataclasses.fields(value) if field.repr]
            return self.fields_mapping(value, names, depth)
        if callable(getattr(kind, "model_dump", None)) and not isinstance(value, type):
            return self.value(value.model_dump(), depth + 1)  # type: ignore[attr-defined]
        if _is_array_like(kind):
            return self.array(value, kind, depth)
        return self.string(_safe_repr(value))

    def fields_mapping(self, owner: object, names: list[str], depth: int) -> object:
        return self.mapping(
            owner, ((name, getattr(owner, name)) for name in names), len(names), depth
        )

    def nested_items(
        self, value: list[object] | tuple[object, ...] | deque[object], depth: int
    ) -> object:
        if id(value) in self.active:
            return f"<recursive {_type_name(value)}>"
        self.active.add(id(value))
        try:
            if isinstance(value, list):
                return self.items(list.__iter__(value), list.__len__(value), depth)
            if isinstance(value, tuple):
                return self.items(tuple.__iter__(value), tuple.__len__(value), depth)
            return self.items(iter(value), len(value), depth)
        finally:
            self.active.discard(id(value))

    def unordered(self, value: set[object] | frozenset[object], depth: int) -> object:
        size = len(value)
        if size > self.nodes:
            self.nodes -= 1
            return f"<{_type_name(value)} len={size}>"
        if id(value) in self.active:
            return f"<recursive {_type_name(value)}>"
        self.active.add(id(value))
        try:
            try:
                # Visiting in a fixed order keeps budget use the same in every process
                # (str hashes, and so set order, vary between processes).
                ordered: Iterable[object] = sorted(value)  # type: ignore[type-var]
            except Exception:
                ordered = value
            rendered = sorted(orjson.dumps(item) for item in self.items(iter(ordered), size, depth))
            return [orjson.Fragment(item) for item in rendered]
        finally:
            self.active.discard(id(value))

    def bytes_marker(self, value: bytes | bytearray | memoryview) -> str:
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        name = _type_name(value)
        if size > self.hashable and size > _SHORT_TEXT:
            return f"<{name} len={size}>"
        self.hashable -= size
        digest = hashlib.blake2b(value, digest_size=_DIGEST_SIZE).hexdigest()
        return f"<{name} len={size} blake2b={digest}>"

    def array(self, value: object, kind: type, depth: int) -> object:
        shape = getattr(value, "shape", None)
        if shape == () and callable(getattr(kind, "item", None)):
            # numpy scalars and 0-d arrays/tensors: the number itself is the useful part.
            item = value.item()  # type: ignore[attr-defined]
            if type(item) is not kind:
                return self.value(item, depth + 1)
        summary = _array_summary(value)
        return self.string(summary if summary is not None else _safe_repr(value))


def _plain(value: bool | int | float) -> object:
    if isinstance(value, int):
        return int.__int__(value)
    return float.__float__(value)
