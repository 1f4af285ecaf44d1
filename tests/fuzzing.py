"""Helpers of the fuzz tests (tasks/test_task.py, results/test_result.py, core/test_safeyaml.py): Hypothesis
settings, JSON-like values, every location in a document, a document with one location changed, and the
check that reading either works or fails with a one-line SubclassbenchError."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from subclassbench.errors import SubclassbenchError

# Derandomized: CI explores the same inputs every run (a failure is reproducible); raise max_examples locally.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON-like document (its key paths), the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:6]):  # the first few items of long lists are enough
            out += paths(value, (*prefix, i))
    return out


def mutated(doc: Any, where: tuple, value: Any, delete: bool) -> Any:
    doc = copy.deepcopy(doc)
    if not where:
        return value
    node = doc
    for key in where[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        node.pop(where[-1])
    else:
        node[where[-1]] = value
    return doc


def reads_or_fails_cleanly(action: Any) -> None:
    try:
        action()
    except SubclassbenchError as exc:
        assert "\n" not in str(exc)
