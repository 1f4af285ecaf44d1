"""core/executor.py: units run in order, each retried once, failures reported without stopping the others."""

from __future__ import annotations

import pytest

from subclassbench.core.executor import RETRIES, Call, Outcome, RayOptions, Unit, run_units
from subclassbench.errors import SubclassbenchError

CALLS: list[str] = []


def _record(name: str) -> str:
    CALLS.append(name)
    return name


def _fail_first(name: str, failures: dict[str, int]) -> str:
    """Fails the first ``failures[name]`` times it is called for ``name``."""
    CALLS.append(name)
    if failures.get(name, 0) > 0:
        failures[name] -= 1
        raise RuntimeError(f"{name} broke\nsecond line")
    return name


@pytest.fixture(autouse=True)
def _clean() -> None:
    CALLS.clear()


def test_local_units_run_their_calls_in_order_and_keep_the_units_order():
    units = [
        Unit(Call(_record, ("a-final",)), before=(Call(_record, ("a-1",)), Call(_record, ("a-2",)))),
        Unit(Call(_record, ("b-final",))),
    ]
    ended: list[tuple[str, int]] = []
    outcomes = run_units(units, finished=lambda o, n: ended.append((o.value, n)))
    assert CALLS == ["a-1", "a-2", "a-final", "b-final"]
    assert [(o.status, o.value, o.attempts) for o in outcomes] == [("done", "a-final", 1), ("done", "b-final", 1)]
    assert ended == [("a-final", 1), ("b-final", 2)]


def test_a_failing_unit_is_retried_once_from_its_first_call():
    failures = {"x-final": 1}
    unit = Unit(Call(_fail_first, ("x-final", failures)), before=(Call(_record, ("x-1",)),))
    seen: list[tuple[int, str | None]] = []
    (outcome,) = run_units([unit], announce=lambda _u, _c, attempt, error: seen.append((attempt, error)))
    assert outcome.status == "done" and outcome.attempts == 2 and outcome.error is None
    assert CALLS == ["x-1", "x-final", "x-1", "x-final"]  # the whole unit again, not only the call that failed
    assert seen == [(1, None), (1, None), (2, "x-final broke"), (2, "x-final broke")]


def test_a_unit_that_keeps_failing_is_reported_and_the_others_still_run():
    failures = {"bad": 99}
    units = [Unit(Call(_fail_first, ("bad", failures))), Unit(Call(_record, ("good",)))]
    bad, good = run_units(units)
    assert (bad.status, bad.attempts, bad.error, bad.value) == ("failed", 1 + RETRIES, "bad broke", None)
    assert (good.status, good.value) == ("done", "good")
    assert CALLS == ["bad"] * (1 + RETRIES) + ["good"]


def test_our_own_errors_are_reported_whole():
    def refuse() -> None:
        raise SubclassbenchError("unknown task 'x'; valid: a, b")

    (outcome,) = run_units([Unit(Call(refuse))])
    assert outcome.error == "unknown task 'x'; valid: a, b"


def test_an_unknown_executor_is_one_line():
    with pytest.raises(SubclassbenchError, match="unknown executor 'slurm'; use local or ray"):
        run_units([Unit(Call(_record, ("a",)))], "slurm")


def test_no_units_means_no_outcomes_on_either_executor():
    assert run_units([]) == []
    assert run_units([], "ray", RayOptions(num_cpus=1)) == []  # no cluster is started for nothing


def test_outcomes_record_their_unit():
    unit = Unit(Call(_record, ("a",)), tag=("cell", 3))
    (outcome,) = run_units([unit])
    assert isinstance(outcome, Outcome) and outcome.unit is unit and outcome.unit.tag == ("cell", 3)
    assert outcome.gpu_ids == []  # locally no GPU is assigned by a scheduler
