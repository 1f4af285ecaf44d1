"""Property-based fuzzing: whatever a task file or a result file holds, reading it either works or raises
one SubclassbenchError (a one-line message), never another exception."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subclassbench.core import safeyaml
from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result
from subclassbench.tasks.task import Task, builtin_tasks_dir
from tests.conftest import REPO

TASK = yaml.safe_load((builtin_tasks_dir() / "digits-5.yaml").read_text())
RESULT = json.loads((REPO / "submissions" / "digits-cnn-coarse" / "results" / "digits-5.json").read_text())
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


TASK_PATHS, RESULT_PATHS = paths(TASK), paths(RESULT)


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


@FUZZ
@given(st.sampled_from(TASK_PATHS), values, st.booleans())
def test_fuzzed_task_files(where, value, delete):
    raw = mutated(TASK, where, value, delete)

    def load() -> None:
        task = Task.from_dict(raw)
        json.dumps(task.summary())

    reads_or_fails_cleanly(load)


@FUZZ
@given(st.sampled_from(RESULT_PATHS), values, st.booleans())
def test_fuzzed_result_files(where, value, delete):
    doc = mutated(RESULT, where, value, delete)
    reads_or_fails_cleanly(lambda: Result.from_doc(doc))


@FUZZ
@given(st.text(max_size=400))
def test_fuzzed_yaml_text(text):
    reads_or_fails_cleanly(lambda: safeyaml.loads(text, "fuzz.yaml"))
