"""ledger.http.inputs.json_depth: how deep a JSON body nests, brackets in strings not counted."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.http.inputs import JSON_DEPTH_MAX, json_depth


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [JSON_DEPTH_MAX - 1, JSON_DEPTH_MAX])
def test_up_to_the_limit_passes(depth: int) -> None:
    assert json_depth(nested(depth)) <= JSON_DEPTH_MAX


@pytest.mark.parametrize("depth", [JSON_DEPTH_MAX + 1, 1000, 100_000])
def test_beyond_the_limit_is_seen(depth: int) -> None:
    assert json_depth(nested(depth)) > JSON_DEPTH_MAX
    assert json_depth(b"[" * depth + b"]" * depth) > JSON_DEPTH_MAX


def test_brackets_and_escaped_quotes_inside_strings_do_not_count() -> None:
    text = '\\"' + "[" * 100 + "{" * 100 + '"'
    body = json.dumps({"description": text, "lines": [{"a": 1}]}).encode()
    assert json_depth(body) <= 3


@given(st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                    max_leaves=30))  # fmt: skip
def test_a_decodable_body_is_never_reported_deeper_than_it_is(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    real = depth(value)
    assert json_depth(json.dumps(value).encode()) <= max(real, 0) or real > JSON_DEPTH_MAX
