"""Independent units of scoring work run in worker processes, their results returned in submission order.

Processes, not threads: Ward's linkage and scikit-learn's scores hold the GIL. Workers are started with
``spawn`` (a fork after torch's or faiss's OpenMP threads have run is not safe) once per pool, and run
one OpenMP thread each. A unit is a pure function of its arguments, so the results are the same
whatever the number of workers (tested); with one worker the units run inline, in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from subclassbench.errors import SubclassbenchError


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a Slurm or container limit sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start_worker() -> None:
    import sklearn

    # The parent checks its inputs once (finite float32, integer labels); per-call validation would
    # otherwise cost more than a superclass-sized clustering, as in the parent (clusterability.StartedLayers).
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)


class Pending:
    """Units of work started by :meth:`WorkerPool.start`; ``result()`` waits for (or runs) them, once."""

    def __init__(self, compute: Callable[[], list[Any]]) -> None:
        self._compute: Callable[[], list[Any]] | None = compute
        self._result: list[Any] | None = None

    def result(self) -> list[Any]:
        if self._compute is not None:
            self._result, self._compute = self._compute(), None
        assert self._result is not None
        return self._result


class WorkerPool:
    """``map`` over units in ``workers`` processes (inline when 1); at most two units per worker in flight,
    so a lazy iterable of units is materialised a few at a time."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._executor: ProcessPoolExecutor | None = None
        self._feeders: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # feeder threads share one set of worker processes

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
        if self._feeders is not None:
            self._feeders.shutdown(cancel_futures=True)
            self._feeders = None

    def start(self, fn: Callable[..., Any], units: Iterable[tuple[Any, ...]]) -> Pending:
        """:meth:`map`, started now and collected with ``.result()``: with workers, the units run while the
        caller goes on (a thread of this process feeds them to the workers); inline, they run at ``.result()``,
        so a single process does one thing at a time, as without a pool."""
        if self.workers == 1:
            return Pending(lambda: self.map(fn, units))
        if self._feeders is None:
            self._feeders = ThreadPoolExecutor(4, thread_name_prefix="score-feeder")
        return Pending(self._feeders.submit(self.map, fn, units).result)

    def _processes(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
                )
            return self._executor

    def map(self, fn: Callable[..., Any], units: Iterable[tuple[Any, ...]]) -> list[Any]:
        return list(self.imap(fn, units))

    def imap(self, fn: Callable[..., Any], units: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """``fn(*unit)`` for each unit, yielded in the units' order as they finish."""
        if self.workers == 1:
            for unit in units:
                yield fn(*unit)
            return
        executor = self._processes()
        pending: deque[Future[Any]] = deque()
        try:
            for unit in units:
                pending.append(executor.submit(fn, *unit))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            # Only the processes are dropped here: this may run in a feeder thread, which cannot join itself.
            with self._lock:
                if self._executor is executor:
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = None
            raise SubclassbenchError(
                "a scoring worker process died (out of memory, or a Python script that starts workers without "
                'the `if __name__ == "__main__":` guard); rerun with --score-workers 1'
            ) from None
