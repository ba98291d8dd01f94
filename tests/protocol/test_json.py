"""``altwebsocket._lazy.json_loads`` / ``json_dumps`` (the C accelerator ``_json`` driven
without the ``json`` package) behave exactly as ``json.loads`` / ``json.dumps(v,
ensure_ascii=False)``: the same text out, the same values in, a ``ValueError`` for what is
not JSON."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from altwebsocket._lazy import json_dumps, json_loads

CHARS = "aé\u2028\u0085\x00\x1f\"\\/\n\r\t \ud800\udfff\U0001f600{}[],:0"


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**70), rng.randrange(-10**6, 10**6)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e300, 2.5e-308, math.inf, -math.inf, rng.random()])
    if kind in (4, 5):
        return "".join(rng.choice(CHARS) for _ in range(rng.randrange(12)))
    if kind in (6, 7):
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {"".join(rng.choice(CHARS) for _ in range(rng.randrange(5))): value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def test_the_same_text_and_values_as_the_json_module() -> None:
    rng = random.Random(20261201)
    for _ in range(3000):
        item = value(rng)
        text = json_dumps(item)
        assert text == json.dumps(item, ensure_ascii=False)
        for spaced in (text, f" \n{text}\t\r ", json.dumps(item), json.dumps(item, indent=1)):
            assert repr(json_loads(spaced)) == repr(json.loads(spaced))


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "1 2", '{"a": 1}x', "nul", '"\x01"',
                                  "{1: 2}", "[", '"\\x"', "01", "\ufeff1", "[1] ]", "NaNx"])
def test_what_is_not_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        json_loads(text)


def test_what_json_cannot_hold_is_a_type_error() -> None:
    for item in (b"bytes", {1, 2}, object(), {(1, 2): 3}):
        with pytest.raises(TypeError):
            json.dumps(item)
        with pytest.raises(TypeError):
            json_dumps(item)
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError):
        json_dumps(circular)


def test_a_failed_dump_leaves_nothing_behind() -> None:
    """A dump that fails half-way (an object JSON cannot hold, deep inside) does not make
    a later dump of the same containers look circular."""
    inner: list[Any] = [1, object()]
    outer = {"a": inner}
    with pytest.raises(TypeError):
        json_dumps(outer)
    inner.pop()
    assert json_dumps(outer) == json.dumps(outer, ensure_ascii=False)
