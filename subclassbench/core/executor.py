"""One executor for many independent units of work: in this process one after another, or as Ray tasks.

Model × task matrices (:mod:`subclassbench.evaluation.matrix`) and training runs
(:mod:`subclassbench.training.runs`) both hand it their units. A :class:`Unit` is a final call,
optionally after independent calls it needs first (a matrix cell's shard extractions before its
scoring; under Ray those run in parallel and the final call waits for them). Every unit that fails
is retried once (:data:`RETRIES`), then reported, without stopping the others; the outcomes come
back in the units' order, whatever order they finished in.

Under Ray each call is one task asking for ``task_cpus`` CPUs and ``task_gpus`` GPUs; Ray gives each
task its own GPUs (it sets ``CUDA_VISIBLE_DEVICES``), and each outcome records the GPUs its final
call ran on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from subclassbench.core.raycluster import connect
from subclassbench.errors import SubclassbenchError, describe_failure

EXECUTORS = ("local", "ray")
RETRIES = 1  # a failed unit runs once more (locally the whole unit; under Ray each failed task)


@dataclass(frozen=True)
class Call:
    """One picklable function call (Ray ships it to a worker), with what progress calls it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class Unit:
    """The final call gives the unit's value; the ``before`` calls must all succeed first."""

    final: Call
    before: tuple[Call, ...] = ()
    tag: Any = None  # the caller's own record of the unit (a matrix cell, a training run)


@dataclass
class Outcome:
    unit: Unit
    status: str = "failed"  # "done" or "failed"
    value: Any = None
    attempts: int = 0
    error: str | None = None
    gpu_ids: list[str] = field(default_factory=list)  # the GPUs Ray gave the final call (empty locally)


@dataclass(frozen=True)
class RayOptions:
    """Where the Ray tasks run and what each asks for."""

    address: str | None = None  # a running cluster; None starts a local one of num_cpus CPUs and num_gpus GPUs
    num_cpus: int | None = None
    num_gpus: int | None = None
    task_cpus: float = 1
    task_gpus: float = 0.0


# Progress hooks: before a call runs locally (unit, call, attempt from 1, the previous attempt's error),
# once Ray has every unit scheduled (how many), and whenever a unit ends (its outcome, how many have ended).
Announce = Callable[[Unit, Call, int, "str | None"], None]
Scheduled = Callable[[int], None]
Finished = Callable[[Outcome, int], None]


def _quiet(*_: Any) -> None:
    pass


def check_executor(executor: str) -> None:
    """An executor name this module runs, or a one-line error (callers check before any other work)."""
    if executor not in EXECUTORS:
        raise SubclassbenchError(f"unknown executor '{executor}'; use local or ray")


def run_units(
    units: Sequence[Unit],
    executor: str = "local",
    ray: RayOptions | None = None,
    announce: Announce = _quiet,
    scheduled: Scheduled = _quiet,
    finished: Finished = _quiet,
) -> list[Outcome]:
    """Run every unit; one outcome per unit, in the units' order."""
    check_executor(executor)
    if executor == "ray":
        return _run_ray(units, ray or RayOptions(), scheduled, finished)
    return _run_local(units, announce, finished)


def _run_local(units: Sequence[Unit], announce: Announce, finished: Finished) -> list[Outcome]:
    outcomes = []
    for unit in units:
        outcome = Outcome(unit)
        for _attempt in range(1 + RETRIES):
            outcome.attempts += 1
            try:
                for call in (*unit.before, unit.final):
                    announce(unit, call, outcome.attempts, outcome.error)
                    outcome.value = call.fn(*call.args)
                outcome.status, outcome.error = "done", None
                break
            except Exception as exc:  # one bad unit must not stop the others
                outcome.value, outcome.error = None, describe_failure(exc)
        outcomes.append(outcome)
        finished(outcome, len(outcomes))
    return outcomes


def _on_ray(fn: Callable[..., Any], args: tuple[Any, ...], *_after: Any) -> tuple[Any, list[str]]:
    """A call inside a Ray task: its value and the GPUs Ray gave it. ``_after`` are the results of the calls
    it waits for (Ray starts this task only once all of them finished)."""
    import ray

    return fn(*args), [str(i) for i in ray.get_gpu_ids()]


def _run_ray(units: Sequence[Unit], options: RayOptions, scheduled: Scheduled, finished: Finished) -> list[Outcome]:
    if not units:
        return []
    with connect(options.address, options.num_cpus, options.num_gpus) as ray:
        remote = ray.remote(
            num_cpus=options.task_cpus, num_gpus=options.task_gpus, max_retries=RETRIES, retry_exceptions=True
        )(_on_ray)
        pending = {}
        for unit in units:
            before = [remote.remote(call.fn, call.args) for call in unit.before]
            pending[remote.remote(unit.final.fn, unit.final.args, *before)] = unit
        scheduled(len(units))
        ended: dict[int, Outcome] = {}
        waiting = list(pending)
        while waiting:  # reported as they finish; the outcomes keep the units' order
            ready, waiting = ray.wait(waiting, num_returns=1)
            outcome = Outcome(pending[ready[0]], attempts=1 + RETRIES)
            try:
                outcome.value, outcome.gpu_ids = ray.get(ready[0])
                outcome.status, outcome.attempts = "done", 1
            except Exception as exc:  # reported per unit; the others keep theirs
                outcome.error = describe_failure(exc)
            ended[id(outcome.unit)] = outcome
            finished(outcome, len(ended))
    return [ended[id(unit)] for unit in units]
