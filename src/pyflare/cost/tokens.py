"""Counting tokens offline when a provider reports none.

With the ``tokens`` extra (bpe-openai, OpenAI's cl100k/o200k encodings with
tiktoken's ids), text is encoded with the model family's encoding: o200k_base for
GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o-series and gpt-oss, cl100k_base for GPT-4,
GPT-3.5 and OpenAI's embedding models, and o200k_base as the nearest stand-in
for other makers' models. Without it, a count is ``ceil(chars / 4)``. Either way
the callers flag the count as estimated (``pyflare.tokens.estimated=true``).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pyflare.errors import InvalidArgumentError
from pyflare.mlfields import stringify

__all__ = ["TokenCount", "count_message_tokens", "count_tokens", "encoding_for"]

Method = Literal["encoding:o200k_base", "encoding:cl100k_base", "chars"]

# OpenAI's chat format: each message costs a few tokens around its content, a
# name one more, and every reply is primed with three (OpenAI's cookbook figures).
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3

_CL100K = re.compile(r"^(gpt-4(?!o|\.\d|-?o)(-|$)|gpt-3\.5|gpt-35|text-embedding-(3|ada))")


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was made."""

    n: int
    method: Method


def encoding_for(model_id: str | None) -> Literal["o200k_base", "cl100k_base"]:
    """The encoding used to count tokens for a model."""
    name = (model_id or "").strip().lower().rsplit("/", 1)[-1]
    return "cl100k_base" if _CL100K.match(name) else "o200k_base"


@functools.cache
def _tokenizer(encoding: str) -> Any:
    """bpe-openai's tokenizer for an encoding, or None without the ``tokens`` extra."""
    try:
        with warnings.catch_warnings():
            # bpe-openai's package import reads its data with a deprecated importlib call.
            warnings.simplefilter("ignore", DeprecationWarning)
            from bpe_openai import _bindings
    except ImportError:
        return None
    return _bindings.tokenizer_for_encoding(encoding)


def count_tokens(text: str, model_id: str | None = None) -> TokenCount:
    """Tokens in ``text`` for ``model_id``'s encoding (see the module docstring).

    Raises:
        InvalidArgumentError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(f"count_tokens() needs a str, got {type(text).__name__}")
    encoding = encoding_for(model_id)
    tokenizer = _tokenizer(encoding)
    if tokenizer is None:
        return TokenCount(math.ceil(len(text) / 4), "chars")
    clean = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates
    method: Method = "encoding:cl100k_base" if encoding == "cl100k_base" else "encoding:o200k_base"
    return TokenCount(int(tokenizer.count(clean)), method)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: the text parts count
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return stringify(content)


def count_message_tokens(
    messages: Iterable[Mapping[str, Any]], model_id: str | None = None
) -> TokenCount:
    """Prompt tokens of a chat message list, with OpenAI's per-message overhead.

    Each message's role, content (text parts of multi-part content), name and tool
    calls (their JSON) are counted; images and audio are not.

    Raises:
        InvalidArgumentError: ``messages`` is not a list of mappings.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Iterable):
        raise InvalidArgumentError(
            f"count_message_tokens() needs a list of message dicts, got {type(messages).__name__}"
        )
    total = 0
    method: Method | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidArgumentError(
                f"count_message_tokens(): message {index} is a {type(message).__name__}, "
                "not a mapping"
            )
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                text = _content_text(value)
            elif key in ("role", "name", "tool_call_id"):
                text = "" if value is None else str(value)
            elif key in ("tool_calls", "function_call"):
                text = stringify(value)
            else:
                continue
            counted = count_tokens(text, model_id)
            method = counted.method
            total += counted.n
            if key == "name":
                total += _TOKENS_PER_NAME
    total += _REPLY_PRIMING
    return TokenCount(total, method or count_tokens("", model_id).method)
