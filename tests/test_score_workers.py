"""Clusterability scored in worker processes over (layer, superclass) units: the same result as in-process."""

from __future__ import annotations

import os

import pytest

from subclassbench.core.workerpool import WorkerPool, available_cores
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from tests.conftest import without_run


def _die(code: int) -> int:
    os._exit(code)  # a worker killed mid-unit (out of memory, a signal)


def _square(x: int) -> int:
    return x * x


def test_two_score_workers_give_the_in_process_result(tmp_path):
    """Ward, reconstruction (train-split k-means, the superclass probes in a worker when features are cached)
    and the validation split's layer choice included."""
    base = {"model": "builtin:digits_cnn.digits5_coarse", "task": "digits-5", "progress": False, "bootstrap": 20}
    serial = evaluate(EvaluationRequest(**base, cache_dir=str(tmp_path / "c")))
    parallel = evaluate(EvaluationRequest(**base, cache_dir=str(tmp_path / "c"), score_workers=2))
    assert serial["summary"]["committed_layer"] and serial["layers"][0]["clusterability"]["ward"] is not None
    assert serial["layers"][-1]["clusterability"]["reconstruction_acc"] is not None
    assert without_run(serial) == without_run(parallel)
    assert parallel["run"]["compute"]["score_workers"] == 2 and serial["run"]["compute"]["score_workers"] == 1
    # In-memory features (no cache): units get copies of their rows; the superclass probes stay in this process.
    in_memory = evaluate(EvaluationRequest(**base, cache="off", score_workers=2))
    assert without_run(in_memory) == without_run(serial)


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


def test_bad_score_workers_is_one_error_line():
    from typer.testing import CliRunner

    from subclassbench.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--score-workers", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    with pytest.raises(SubclassbenchError, match="--score-workers must be between 0"):
        evaluate(EvaluationRequest(score_workers=999, progress=False))


def test_non_finite_features_are_one_error_before_any_scoring():
    """score_layers checks its inputs itself, before any unit starts (StartedLayers leaves that to its caller)."""
    import numpy as np

    from subclassbench.features.extraction import LayerFeatures
    from subclassbench.scoring.clusterability import score_layers
    from subclassbench.tasks.task import load_task

    split = load_task("digits-5").load_split("test")
    x = np.random.RandomState(0).randn(len(split), 4).astype(np.float32)
    x[3, 1] = np.inf
    bad = LayerFeatures("block1", 0.5, "none", x)
    with pytest.raises(SubclassbenchError, match="layer block1 has NaN or infinite features"):
        score_layers([bad], split, with_ward=False, pool=WorkerPool(2))
