"""Offline token counts: the right encoding per model family, chat overhead, bad input."""

from __future__ import annotations

import warnings

import pytest

from pyflare.cost.tokens import count_message_tokens, count_tokens, encoding_for
from pyflare.errors import InvalidArgumentError

TEXT = "PyFlare counts tokens offline: naïve café, 12345 ünïcödé, <|endoftext|> and emoji 🚀."


def tiktoken_ids(encoding: str, text: str) -> list[int]:
    """bpe-openai's tiktoken-compatible Python encoder, the reference for counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from bpe_openai import get_encoding

        return list(get_encoding(encoding).encode_ordinary(text))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-3-5-sonnet", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_per_family(model: str | None, encoding: str) -> None:
    assert encoding_for(model) == encoding
    counted = count_tokens(TEXT, model)
    assert counted.method == f"encoding:{encoding}"
    assert counted.n == len(tiktoken_ids(encoding, TEXT))
    assert count_tokens("hello world", model).n == 2  # the same in tiktoken's encodings


def test_counts_differ_between_encodings() -> None:
    text = "Привет, мир! これは日本語のテキストです。 مرحبا بالعالم"
    assert count_tokens(text, "gpt-4o").n != count_tokens(text, "gpt-4").n


def test_chars_fallback_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyflare.cost import tokens

    monkeypatch.setattr(tokens, "_tokenizer", lambda encoding: None)
    assert count_tokens("abcdefghi", "gpt-4o") == tokens.TokenCount(3, "chars")
    assert count_tokens("", "gpt-4o").n == 0


def test_lone_surrogates_are_counted() -> None:
    assert count_tokens("bad \ud800 text").n > 0


def test_message_overhead() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi", "name": "ann"},
    ]
    counted = count_message_tokens(messages, "gpt-4o")
    content = sum(
        count_tokens(t, "gpt-4o").n for t in ("system", "You are terse.", "user", "Hi", "ann")
    )
    assert counted.n == content + 2 * 3 + 1 + 3
    assert counted.method == "encoding:o200k_base"


def test_multipart_content_and_tool_calls() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]}]
    tools = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "function": {"name": "f"}}],
        }
    ]
    assert (
        count_message_tokens(parts).n
        == count_message_tokens([{"role": "user", "content": "look"}]).n
    )
    assert count_message_tokens(tools).n > count_message_tokens([{"role": "assistant"}]).n


def test_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="needs a str"):
        count_tokens(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="list of message dicts"):
        count_message_tokens("hello")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="message 1 is a str"):
        count_message_tokens([{"role": "user"}, "oops"])  # type: ignore[list-item]
