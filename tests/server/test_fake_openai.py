"""The local OpenAI-compatible server, driven by the real ``openai`` client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest
from fake_openai import FakeOpenAI, chat_usage, embedding

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is PyFlare, in one line?"},
]


@pytest.fixture
def client(fake_openai: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai, api_key="test-key", max_retries=0) as opened:
        yield opened


def test_chat_completion(client: openai.OpenAI, fake_openai_server: FakeOpenAI) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.model == "gpt-4o-mini"
    assert response.choices[0].message.content == "Echo: What is PyFlare, in one line?"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    # 3 + 3 words of system, 6 + 3 of the question; the reply has 7 words.
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (15, 7)
    assert response.usage.total_tokens == 22
    assert chat_usage(MESSAGES) == response.usage.model_dump(exclude_none=True)
    (request,) = fake_openai_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["messages"] == MESSAGES


def test_content_parts_count_as_text(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": [{"type": "text", "text": "two words"}]}],
    )
    assert response.choices[0].message.content == "Echo: two words"
    assert response.usage is not None
    assert response.usage.prompt_tokens == 5


@pytest.mark.parametrize("include_usage", [True, False])
def test_streaming_chat(client: openai.OpenAI, include_usage: bool) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: What is PyFlare, in one line?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usages = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in usages] == [
            (15, 7, 22)
        ]
        assert chunks[-1].choices == []
    else:
        assert usages == []


def test_streaming_without_stream_options(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Echo: " + MESSAGES[1]["content"]


async def test_async_client_and_concurrent_requests(fake_openai: str) -> None:
    async with openai.AsyncOpenAI(base_url=fake_openai, api_key="k", max_retries=0) as client:
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"question {i}"}]
                )
                for i in range(8)
            )
        )
    assert [a.choices[0].message.content for a in answers] == [
        f"Echo: question {i}" for i in range(8)
    ]
    assert len({a.id for a in answers}) == 8


def test_embeddings_default_base64_and_float(client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert [d.embedding for d in default.data] == [embedding("a b"), embedding("c")]
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (3, 3)
    assert default.model == "text-embedding-3-small"
    floats = client.embeddings.create(
        model="m", input="hello", encoding_format="float", dimensions=4
    )
    assert floats.data[0].embedding == embedding("hello", 4)
    assert len(floats.data[0].embedding) == 4


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("error-429", openai.RateLimitError),
        ("error-500", openai.InternalServerError),
        ("error-400", openai.BadRequestError),
    ],
)
def test_injected_failures(client: openai.OpenAI, model: str, error: type[Exception]) -> None:
    with pytest.raises(error, match="injected failure"):
        client.chat.completions.create(model=model, messages=MESSAGES)
    with pytest.raises(error):
        client.embeddings.create(model=model, input="x")


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/chat/completions", b"{not json", 400, "not JSON"),
        ("/chat/completions", b"[1]", 400, "JSON object"),
        ("/chat/completions", b'{"messages": []}', 400, "'model' is required"),
        ("/chat/completions", b'{"model": "m", "messages": "hi"}', 400, "'messages'"),
        ("/embeddings", b'{"model": "m", "input": []}', 400, "'input'"),
        ("/embeddings", b'{"model": "m", "input": "x", "dimensions": 0}', 400, "'dimensions'"),
        ("/embeddings", b'{"model": "m", "input": "x", "encoding_format": "hex"}', 400, "float"),
        ("/completions", b'{"model": "m"}', 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_openai_style_errors(
    fake_openai: str, path: str, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(fake_openai + path, content=body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert httpx.get(fake_openai + "/models").status_code == 404
