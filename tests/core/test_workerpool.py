"""Worker processes (subclassbench.core.workerpool): results in order, a dead worker is one clear error."""

from __future__ import annotations

import os

import pytest

from subclassbench.core.workerpool import WorkerPool, available_cores
from subclassbench.errors import SubclassbenchError


def _die(code: int) -> int:
    os._exit(code)  # a worker killed mid-unit (out of memory, a signal)


def _square(x: int) -> int:
    return x * x


def test_pool_keeps_order_and_reports_a_dead_worker():
    with WorkerPool(2) as pool:
        assert pool.map(_square, [(i,) for i in range(9)]) == [i * i for i in range(9)]
        with pytest.raises(SubclassbenchError, match=r"scoring worker process died.*guard.*--score-workers 1"):
            pool.map(_die, [(3,)])
    with WorkerPool(2) as pool:  # started units are fed by a thread of this process: the same one error
        started = pool.start(_die, [(3,)])
        with pytest.raises(SubclassbenchError, match="scoring worker process died"):
            started.result()
        assert pool.start(_square, [(5,)]).result() == [25]  # new worker processes after the loss
    assert WorkerPool(1).map(_square, [(4,)]) == [16] and available_cores() >= 1
