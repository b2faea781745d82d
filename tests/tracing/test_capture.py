from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import pathlib
import re
import subprocess
import sys
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflare.errors import InvalidArgumentError
from pyflare.tracing.capture import Rendered, render, render_arguments


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: str = "y"
    token: str = dataclasses.field(default="hidden", repr=False)


Pair = collections.namedtuple("Pair", "left right")


class Model:
    """Duck-typed like a pydantic v2 model."""

    def __init__(self, **fields: object) -> None:
        self._fields = fields

    def model_dump(self) -> dict[str, object]:
        return dict(self._fields)


class BrokenModel:
    def model_dump(self) -> dict[str, object]:
        raise RuntimeError("dump failed")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


class BadEverything:
    def __repr__(self) -> str:
        raise RuntimeError("repr failed")

    def __str__(self) -> str:
        raise RuntimeError("str failed")


class Plain:
    pass


class HugeRepr:
    def __repr__(self) -> str:
        return "r" * 100_000


def _text_digest(text: str) -> str:
    return hashlib.blake2b(b"t" + text.encode(), digest_size=16).hexdigest()


def _json_digest(text: str) -> str:
    return hashlib.blake2b(b"j" + text.encode(), digest_size=16).hexdigest()


# --- Rendering ------------------------------------------------------------------------


def test_str_renders_as_itself() -> None:
    rendered = render("hello world")

    assert rendered == Rendered("hello world", _text_digest("hello world"), False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, "3"),
        (1.5, "1.5"),
        (None, "null"),
        (True, "true"),
        ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
        ([1, "x", None], '[1,"x",null]'),
        ((1, 2), "[1,2]"),
        ({3, 1, 2}, "[1,2,3]"),
        (frozenset({"b", "a"}), '["a","b"]'),
        ({1: "a", (1, 2): "b"}, '{"1":"a","[1,2]":"b"}'),
        ({"nested": {"z": 1, "y": {"b": 2, "a": 1}}}, '{"nested":{"y":{"a":1,"b":2},"z":1}}'),
        (Color.RED, "red"),
        (Level.HIGH, "3"),
        ({"color": Color.RED}, '{"color":"red"}'),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        ({"at": datetime.time(3, 4)}, '{"at":"03:04:00"}'),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"),
        (pathlib.PurePosixPath("/tmp/x"), "/tmp/x"),
        (Point(1), '{"x":1,"y":"y"}'),
        (Pair(1, "b"), '{"left":1,"right":"b"}'),
        (Model(b=2, a=datetime.date(2024, 1, 2)), '{"a":"2024-01-02","b":2}'),
        (float("nan"), "NaN"),
        ([float("inf"), float("-inf")], "[Infinity,-Infinity]"),
        (2**70, "1180591620717411303424"),
        (collections.deque([1, 2]), "[1,2]"),
        (Plain(), "<Plain object>"),
        (1 + 2j, "(1+2j)"),
    ],
)
def test_stable_rendering_of_common_types(value: object, expected: str) -> None:
    assert render(value).preview == expected


def test_dict_key_order_does_not_matter() -> None:
    first = render({"a": 1, "b": {"c": 2, "d": 3}})
    second = render({"b": {"d": 3, "c": 2}, "a": 1})

    assert first == second


def test_set_of_mixed_types_is_sorted_by_rendering() -> None:
    assert render({"b", 1, None}).preview == '["b",1,null]'


def test_keys_that_render_alike_are_both_kept() -> None:
    rendered = render({1: "int", "1": "str"})

    assert json.loads(rendered.preview) == [["1", "int"], ["1", "str"]]


def test_bytes_render_as_a_marker_with_a_hash_of_the_content() -> None:
    data = b"\x00\x01secret"
    expected_hash = hashlib.blake2b(data, digest_size=16).hexdigest()

    assert render(data).preview == f"<bytes len=8 blake2b={expected_hash}>"
    assert render(bytearray(data)).preview.startswith("<bytearray len=8 ")
    assert render(memoryview(data)).preview.startswith("<memoryview len=8 ")
    assert render(b"a").digest != render(b"b").digest


def test_array_likes_are_summarised_not_dumped() -> None:
    array = np.zeros((3, 4), dtype=np.float32)

    assert render(array).preview == "<ndarray shape=(3, 4) dtype=float32>"
    assert render(pd.Series([1.0, 2.0])).preview == "<Series shape=(2,) dtype=float64>"
    assert render(pd.DataFrame({"a": [1], "b": [2]})).preview == "<DataFrame shape=(1, 2)>"
    assert render({"x": np.ones(10_000_000, dtype=np.int8)}).preview == (
        '{"x":"<ndarray shape=(10000000,) dtype=int8>"}'
    )


def test_numpy_scalars_render_as_numbers() -> None:
    assert render(np.float32(2.5)).preview == "2.5"
    assert render([np.int64(7)]).preview == "[7]"
    assert render(np.array(3)).preview == "3"


def test_mocks_are_not_taken_for_arrays() -> None:
    from unittest import mock

    preview = render(mock.MagicMock()).preview

    assert preview.startswith("<MagicMock")
    assert "0x" not in preview


def test_functions_render_without_their_address() -> None:
    assert render(test_functions_render_without_their_address).preview == (
        "<function test_functions_render_without_their_address>"
    )


def test_dataclass_fields_hidden_from_repr_are_left_out() -> None:
    assert "hidden" not in render(Point(1)).preview


def test_render_arguments_keeps_parameter_order() -> None:
    rendered = render_arguments({"question": "hi", "k": 3})

    assert rendered.preview == '{"question":"hi","k":3}'
    assert rendered.digest == _json_digest('{"question":"hi","k":3}')
    assert not rendered.truncated


def test_render_arguments_sorts_nested_dicts() -> None:
    assert render_arguments({"q": {"b": 1, "a": 2}}).preview == '{"q":{"a":2,"b":1}}'


def test_render_arguments_of_nothing() -> None:
    assert render_arguments({}).preview == "{}"


def test_str_and_json_renderings_of_the_same_text_differ_in_digest() -> None:
    assert render("1").preview == render(1).preview
    assert render("1").digest != render(1).digest


# --- Preview length ---------------------------------------------------------------------


def test_preview_is_cut_at_max_chars() -> None:
    rendered = render("abcdef", max_chars=3)

    assert rendered.preview == "abc"
    assert rendered.truncated
    assert rendered.digest == render("abcdef").digest


def test_preview_counts_characters_not_bytes() -> None:
    text = "é" * 10

    assert render(text, max_chars=4).preview == "éééé"
    assert render([text], max_chars=4).preview == '["éé'
    assert render([text], max_chars=4).truncated


def test_json_preview_of_exactly_max_chars_is_not_truncated() -> None:
    rendered = render(["é"], max_chars=5)

    assert rendered.preview == '["é"]'
    assert not rendered.truncated


def test_preview_does_not_split_a_surrogate_pair() -> None:
    text = "ab\ud83d\ude00cd"

    assert render(text, max_chars=3).preview == "ab"
    assert render(text, max_chars=4).preview == "ab😀"


def test_preview_is_always_valid_utf8() -> None:
    rendered = render("a\ud800b")

    assert rendered.preview == "a\\ud800b"
    rendered.preview.encode()
    render(["a\ud800b"]).preview.encode()
    render({"k\udfff": 1}).preview.encode()


def test_lone_surrogates_still_give_distinct_digests() -> None:
    assert render("a\ud800").digest != render("a\ud801").digest


def test_max_chars_zero_gives_an_empty_preview() -> None:
    assert render("abc", max_chars=0) == Rendered("", render("abc").digest, True)
    assert render([1], max_chars=0).preview == ""


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_bad_max_chars_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_chars must be an int >= 0"):
        render("x", max_chars=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_chars"):
        render_arguments({}, max_chars=bad)  # type: ignore[arg-type]


# --- Digest ---------------------------------------------------------------------------


def test_equal_values_give_equal_digests() -> None:
    assert render({"a": [1, 2, {3}]}).digest == render({"a": [1, 2, {3}]}).digest


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("a", "b"),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 2}),
        (1, 1.0),
        (None, "null"),
        (b"x", b"y"),
        ({"q": "hi"}, {"q": "hi "}),
    ],
)
def test_different_values_give_different_digests(left: object, right: object) -> None:
    assert render(left).digest != render(right).digest


def test_digest_of_a_10mb_string_covers_all_of_it() -> None:
    text = "x" * 10_000_000
    changed = text[:-1] + "y"

    rendered = render(text)

    assert len(rendered.preview) == 1000
    assert rendered.truncated
    assert rendered.digest == _text_digest(text)
    assert render(changed).digest != rendered.digest


def test_digest_of_a_10mb_string_argument_covers_all_of_it() -> None:
    text = "x" * 10_000_000

    rendered = render_arguments({"doc": text, "k": 3})
    changed = render_arguments({"doc": text[:-1] + "y", "k": 3})

    assert rendered.preview.startswith('{"doc":"xxxx')
    assert len(rendered.preview) == 1000
    assert rendered.truncated
    assert rendered.digest != changed.digest


def test_10mb_bytes_argument_is_hashed_in_full() -> None:
    data = b"x" * 10_000_000

    assert (
        render_arguments({"blob": data}).digest
        != render_arguments({"blob": data[:-1] + b"y"}).digest
    )


def test_digest_is_stable_across_processes() -> None:
    code = (
        "from pyflare.tracing.capture import render, render_arguments;"
        "print(render({'b': {'y', 'x', 'z'}, 'a': [1.5, None, 'é']}).digest);"
        "print(render_arguments({'q': 'hi', 'tags': frozenset({'u', 'v', 'w'})}).digest)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.split()
        for seed in ("1", "2")
    ]

    here = [
        render({"b": {"y", "x", "z"}, "a": [1.5, None, "é"]}).digest,
        render_arguments({"q": "hi", "tags": frozenset({"u", "v", "w"})}).digest,
    ]
    assert runs[0] == runs[1] == here


# --- Bounded and never raising ------------------------------------------------------------


def test_object_whose_repr_raises() -> None:
    assert render(BadRepr()).preview == "<unrenderable BadRepr>"
    assert render(BadEverything()).preview == "<unrenderable BadEverything>"
    assert render([1, BadRepr()]).preview == '[1,"<unrenderable BadRepr>"]'
    assert render_arguments({"x": BadRepr()}).preview == '{"x":"<unrenderable BadRepr>"}'


def test_model_dump_that_raises_falls_back_to_repr() -> None:
    assert render(BrokenModel()).preview == "<BrokenModel object>"


def test_huge_repr_is_cut() -> None:
    preview = render(HugeRepr(), max_chars=100_000).preview

    assert len(preview) <= 501
    assert preview.endswith("…")


def test_self_referential_structures() -> None:
    items: list[object] = [1]
    items.append(items)
    mapping: dict[str, object] = {}
    mapping["self"] = mapping

    assert render(items).preview == '[1,"<recursive list>"]'
    assert render(mapping).preview == '{"self":"<recursive dict>"}'


def test_shared_but_not_recursive_references_render_twice() -> None:
    shared = [1]

    assert render([shared, shared]).preview == "[[1],[1]]"


def test_deep_nesting_is_cut() -> None:
    deep: list[object] = []
    current = deep
    for _ in range(100_000):
        inner: list[object] = []
        current.append(inner)
        current = inner

    rendered = render(deep, max_chars=100_000)

    assert rendered.preview.count("[") == 32
    assert "<list nested too deep>" in rendered.preview


def test_million_element_list_is_bounded() -> None:
    rendered = render(list(range(1_000_000)), max_chars=1_000_000)

    assert rendered.truncated is False
    assert re.search(r',"<\+99\d{4} more items>"\]$', rendered.preview)
    assert len(rendered.preview) < 100_000


def test_million_element_list_of_objects_is_bounded() -> None:
    rendered = render([Plain()] * 1_000_000, max_chars=10_000_000)

    assert re.search(r',"<\+99\d{4} more items>"\]$', rendered.preview)


def test_million_key_dict_is_bounded() -> None:
    rendered = render({i: i for i in range(1_000_000)}, max_chars=10_000_000)

    assert re.search(r'"…":"<\+99\d{4} more items>"', rendered.preview)


def test_million_element_set_is_summarised() -> None:
    assert render(set(range(1_000_000))).preview == "<set len=1000000>"


def test_many_long_strings_are_cut_to_the_text_budget() -> None:
    text = "y" * 300_000
    rendered = render([text] * 10, max_chars=10_000_000)

    assert len(rendered.preview) < 1_200_000
    assert "chars blake2b=" in rendered.preview


def test_short_strings_survive_an_exhausted_text_budget() -> None:
    rendered = render({"a": "x" * 2_000_000, "b": "short"}, max_chars=10_000_000)

    assert rendered.preview.endswith('"b":"short"}')


def test_huge_int_is_summarised() -> None:
    assert render(10**5000).preview.startswith("<int bits=16610 blake2b=")


def test_mapping_changed_during_rendering_does_not_raise() -> None:
    class Sneaky:
        def __init__(self, target: dict[str, object]) -> None:
            self.target = target

        def __repr__(self) -> str:
            self.target["new"] = 1
            return "Sneaky()"

    target: dict[str, object] = {"a": None}
    target["a"] = Sneaky(target)

    assert isinstance(render(target).preview, str)


def test_arguments_that_are_not_a_mapping_do_not_raise() -> None:
    rendered = render_arguments(["not", "a", "mapping"])  # type: ignore[arg-type]

    assert rendered.preview == "['not', 'a', 'mapping']"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=5)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=5)
        | st.tuples(children, children)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values, max_chars=st.integers(min_value=0, max_value=200))
def test_render_never_raises_and_respects_max_chars(value: object, max_chars: int) -> None:
    rendered = render(value, max_chars=max_chars)

    assert len(rendered.preview) <= max_chars
    assert len(rendered.digest) == 32
    rendered.preview.encode()
    assert render(value, max_chars=max_chars) == rendered


@settings(max_examples=100, deadline=None)
@given(arguments=st.dictionaries(st.text(max_size=8), _json_values, max_size=4))
def test_render_arguments_never_raises(arguments: dict[str, object]) -> None:
    rendered = render_arguments(arguments, max_chars=50)

    assert len(rendered.preview) <= 50


@pytest.mark.parametrize(
    "make",
    [
        lambda: BadRepr(),
        lambda: {BadRepr(): 1},
        lambda: {frozenset({BadRepr()}): 1},
        lambda: [float("nan")] * 20,
        lambda: [2**80] * 20,
        lambda: ["a\ud800"] * 20,
        lambda: {"a": BrokenModel()},
    ],
)
def test_awkward_values_never_raise(make: Callable[[], object]) -> None:
    rendered = render(make())

    assert isinstance(rendered.preview, str)
