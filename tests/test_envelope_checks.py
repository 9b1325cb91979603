"""The body checks' shortcut (count the brackets, look for an escaped NUL) refuses exactly
what the walk over every value refuses: nesting past MAX_DEPTH, a NUL in a key or value."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.envelope import MAX_DEPTH, _check_document, _walk_document
from ledger.errors import MalformedEvent

_TEXT = st.text(alphabet=st.sampled_from("ab{[]}\x00\\u0"), max_size=6)
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _TEXT)
_TREES = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=12,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A random tree nested around a chain of random depth, near MAX_DEPTH or past it."""
    node: Any = draw(_TREES | _LEAVES)
    for _ in range(draw(st.integers(0, 8) | st.integers(MAX_DEPTH - 4, MAX_DEPTH + 4))):
        if draw(st.booleans()):
            node = [node, *draw(st.lists(_LEAVES, max_size=2))]
        else:
            node = {draw(_TEXT): node, **draw(st.dictionaries(_TEXT, _LEAVES, max_size=2))}
    return {"id": "evt_1", "data": node}


def _chain(levels: int) -> Any:
    node: Any = []
    for _ in range(levels - 1):
        node = [node]
    return node


def _refusal(check: Any, document: dict[str, Any], raw: bytes | str) -> str | None:
    try:
        check(document, raw)
    except MalformedEvent as exc:
        return str(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(documents(), st.booleans())
@example({"id": "evt_1", "data": _chain(MAX_DEPTH)}, False)  # one level too deep
@example({"id": "evt_1", "data": {"a": "\x00"}}, True)
def test_the_shortcut_refuses_what_the_walk_refuses(document: dict[str, Any], text: bool) -> None:
    encoded = orjson.dumps(document)
    raw = encoded.decode() if text else encoded
    assert _refusal(_check_document, document, raw) == _refusal(_walk_document, document, raw)
