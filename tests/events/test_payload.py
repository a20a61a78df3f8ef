"""Payloads checked against a handler's annotation (pure)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

import pytest

from hare.errors import ConfigurationError
from hare.events.errors import InvalidPayload
from hare.events.payload import dump, load, payload_annotation


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Payment:
    order: str
    cents: int
    lines: list[Line] = dataclasses.field(default_factory=list)
    note: str | None = None


class Refund(TypedDict):
    order: str
    cents: int


def test_a_dataclass_is_built_from_its_json_object_nested_ones_too() -> None:
    paid = load(Payment, {"order": "A-1", "cents": 1200, "lines": [{"sku": "x"}]})
    assert paid == Payment("A-1", 1200, [Line("x", 1)])
    assert dump(paid) == {
        "order": "A-1",
        "cents": 1200,
        "lines": [{"sku": "x", "qty": 1}],
        "note": None,
    }
    assert load(Payment, dump(paid)) == paid


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"order": "A-1"}, "lacks cents"),
        ({"order": "A-1", "cents": "12"}, r"\$\.cents: expected an integer"),
        ({"order": "A-1", "cents": 1, "extra": 1}, "no field"),
        ({"order": "A-1", "cents": 1, "lines": [{"sku": 3}]}, r"\$\.lines\[0\]\.sku"),
        ("A-1", "expected an object"),
        ({"order": "A-1", "cents": True}, "expected an integer"),
    ],
)
def test_a_payload_that_does_not_fit_says_where(value: Any, where: str) -> None:
    with pytest.raises(InvalidPayload, match=where):
        load(Payment, value)


def test_typed_dicts_simple_types_unions_and_literals() -> None:
    assert load(Refund, {"order": "A", "cents": 3}) == {"order": "A", "cents": 3}
    with pytest.raises(InvalidPayload, match="lacks cents"):
        load(Refund, {"order": "A"})
    assert load(float, 3) == 3.0
    assert load(int | None, None) is None
    assert load(dict[str, int], {"a": 1}) == {"a": 1}
    assert load(Literal["a", "b"], "a") == "a"
    for annotation, value in [(int, "1"), (str, 1), (Literal["a"], "c"), (list[int], [1, "x"])]:
        with pytest.raises(InvalidPayload):
            load(annotation, value)


def test_what_is_not_checked_passes_as_it_came() -> None:
    class Custom:
        pass

    assert load(Any, {"x": object}) == {"x": object}
    assert load(Custom, {"x": 1}) == {"x": 1}


def test_pydantic_models_validate_themselves() -> None:
    from pydantic import BaseModel  # the dev extra has it

    class Model(BaseModel):
        order: str
        cents: int

    assert load(Model, {"order": "A", "cents": 1}) == Model(order="A", cents=1)
    assert dump(Model(order="A", cents=1)) == {"order": "A", "cents": 1}
    with pytest.raises(InvalidPayload, match="not a valid Model"):
        load(Model, {"order": "A", "cents": "lots"})


def test_the_annotation_of_the_one_payload_parameter() -> None:
    def typed(payment: Payment) -> None: ...

    def untyped(payment): ...

    def two(a: int, b: int) -> None: ...

    def none() -> None: ...

    assert payload_annotation(typed) is Payment
    assert payload_annotation(untyped) is Any
    for bad in (two, none):
        with pytest.raises(ConfigurationError, match="one positional parameter"):
            payload_annotation(bad)
