"""Everything that starts a local Ray cluster (the optional extra subclassbench[ray]), in one file so that one
cluster serves them: model × task matrices (subclassbench.evaluation.matrix) and training runs
(subclassbench.training.runs) on the Ray executor, compared with the local one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.matrix import Cell, load_matrix, run_matrix
from tests.conftest import without_run
from tests.evaluation.test_matrix import write_matrix


def _results(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): without_run(json.loads(p.read_text())) for p in sorted(folder.rglob("*.json"))}


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for this file's Ray tests (starting one costs more than the tests): 2 CPUs and
    2 GPUs that Ray is told about (logical resources), so GPU placement is exercised on a CPU machine."""
    ray = pytest.importorskip("ray", reason="optional extra: pip install 'subclassbench[ray]'")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_matrix_equals_local(tmp_path, ray_cluster):
    models, tasks = write_matrix(tmp_path)
    cells = load_matrix(models, tasks)
    local = run_matrix(cells, tmp_path / "local", "local", n_shards=2, cache_dir=str(tmp_path / "cache-local"))
    assert not local.failed
    cells_with_failure = [*cells, Cell("builtin:nope", "digits-5")]
    remote = run_matrix(
        cells_with_failure, tmp_path / "ray", "ray", n_shards=2, cache_dir=str(tmp_path / "cache-ray"), num_cpus=2
    )
    assert [o.status for o in remote.outcomes] == ["done"] * 4 + ["failed"]
    assert "nope" in remote.outcomes[-1].error
    assert _results(tmp_path / "local") == _results(tmp_path / "ray")


@pytest.mark.ray
def test_ray_trains_one_run_per_gpu_with_the_local_weights(tmp_path, ray_cluster):
    from subclassbench.training.runs import load_runs, train_runs

    (tmp_path / "runs.yaml").write_text(
        "- {task: digits-5, arch: digits_cnn, labels: [superclass, subclass], seed: 0, epochs: 1, batch_size: 128}\n"
        "- {task: digits-5, arch: nope}\n"
    )
    runs = load_runs(tmp_path / "runs.yaml", tmp_path / "ray")
    with pytest.raises(SubclassbenchError, match="unknown architecture 'nope'"):  # refused before scheduling
        train_runs(runs, "ray", device="cpu", gpus_per_task=1)
    runs = runs[:2]
    # device cpu: the cluster's two GPUs are logical here; Ray still gives each run its own one.
    remote = train_runs(runs, "ray", device="cpu", gpus_per_task=1)
    assert [o.status for o in remote.outcomes] == ["done", "done"]
    assert all(len(o.gpu_ids) == 1 and o.gpu_ids[0] in {"0", "1"} for o in remote.outcomes)
    local = train_runs(load_runs(tmp_path / "runs.yaml", tmp_path / "local")[:2], "local")
    assert not local.failed and all(o.gpu_ids == [] for o in local.outcomes)
    for run in ("digits-5-digits_cnn-superclass-s0", "digits-5-digits_cnn-subclass-s0"):
        cards = [json.loads((tmp_path / where / run / "card.json").read_text()) for where in ("ray", "local")]
        assert cards[0]["weights_sha256"] == cards[1]["weights_sha256"]
