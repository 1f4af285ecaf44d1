"""The feature cache (extract / score), sharded extraction, and model × task matrices (local and Ray)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.encoders.sources import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.matrix import Cell, load_matrix, run_matrix
from subclassbench.evaluation.pipeline import EvaluationRequest, evaluate, extract
from subclassbench.features import extraction as features
from subclassbench.features.cache import FeatureCache, feature_key
from subclassbench.features.extraction import ExtractionContext, extract_cached, extract_features, extract_shard
from subclassbench.tasks.task import load_task
from tests.conftest import without_run

runner = CliRunner()


def request(cache_dir: Path, **kw) -> EvaluationRequest:
    base = {"model": "builtin:digits_mlp", "task": "digits-5", "metrics": ["clusterability"], "progress": False}
    return EvaluationRequest(**{**base, "cache_dir": str(cache_dir), **kw})


def test_second_evaluate_is_a_cache_hit_with_no_forward_pass(tmp_path):
    first = evaluate(request(tmp_path))
    before = features.FORWARD_BATCHES
    second = evaluate(request(tmp_path))
    assert features.FORWARD_BATCHES == before  # counted, not timed
    assert second["run"]["feature_cache"]["misses"] == 0 and second["run"]["feature_cache"]["hits"] > 0
    assert without_run(first) == without_run(second)


def test_score_reads_only_the_cache(tmp_path):
    with pytest.raises(Exception, match="not in the cache; run `subclassbench extract`"):
        evaluate(request(tmp_path, cache="only"))
    stats = extract(request(tmp_path))
    assert stats.misses > 0
    before = features.FORWARD_BATCHES
    scored = evaluate(request(tmp_path, cache="only"))
    assert features.FORWARD_BATCHES == before
    assert without_run(scored) == without_run(evaluate(request(tmp_path, cache="off")))


def test_stale_keys_miss(tmp_path):
    from safetensors.torch import save_file

    evaluate(request(tmp_path))
    encoder = load_encoder("builtin:digits_mlp", num_classes=5)
    for p in encoder.model.parameters():
        p.data.mul_(2.0)
    weights = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(weights))
    before = features.FORWARD_BATCHES
    other = evaluate(request(tmp_path, weights=str(weights)))
    assert features.FORWARD_BATCHES > before and other["run"]["feature_cache"]["hits"] == 0
    # Same weights, other preprocessing: the key differs, so it is a miss too.
    split = load_task("digits-5").load_split()
    base = load_encoder("builtin:digits_mlp", num_classes=5)
    from dataclasses import replace

    changed = replace(base, preprocessing=replace(base.preprocessing, mean=(0.5,)))
    key = ExtractionContext.create(base, split, None).key("fc1")
    assert key != ExtractionContext.create(changed, split, None).key("fc1")


def test_a_half_written_or_damaged_entry_is_never_read(tmp_path):
    cache = FeatureCache(tmp_path)
    fields = {"layer": "x"}
    key = feature_key(fields)
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    # An array file without its record (a writer killed between the two renames).
    (tmp_path / key[:2]).mkdir()
    np.save(tmp_path / key[:2] / f"{key}.npy", array)
    assert cache.get(key) is None
    cache.put(key, array, fields, {"pooling": "none"})
    got = cache.get(key)
    assert got is not None and np.array_equal(got[0], array)
    # Truncated after the record was written: the sha256 no longer matches.
    path = tmp_path / key[:2] / f"{key}.npy"
    path.write_bytes(path.read_bytes()[:-8])
    assert cache.get(key) is None
    stray = tmp_path / key[:2] / f".{'e' * 32}.tmp"
    stray.write_bytes(b"partial")
    os.utime(stray, (0, 0))  # a leftover of a writer killed long ago
    assert cache.prune(everything=True) == 1 and not list(tmp_path.glob(f"{key[:2]}/*"))


def test_shards_merge_to_the_unsharded_features(tmp_path):
    task = load_task("digits-5")
    split = task.load_split()
    encoder = load_encoder("builtin:digits_cnn.digits5_coarse")
    cache = FeatureCache(tmp_path)
    context = ExtractionContext.create(encoder, split, None, batch_size=64)
    for index in range(3):
        extract_shard(context, index, 3, cache)
    before = features.FORWARD_BATCHES
    merged = extract_cached(context, cache, n_shards=3)
    assert features.FORWARD_BATCHES == before
    whole = extract_features(encoder, split.images, None, batch_size=64, progress=False)
    for a, b in zip(merged, whole, strict=True):
        assert a.name == b.name and a.pooling == b.pooling and np.array_equal(a.features, b.features)


def test_cache_commands(tmp_path):
    evaluate(request(tmp_path))
    listed = runner.invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert listed.exit_code == 0 and "builtin:digits_mlp" in listed.output and "fc1" in listed.output
    du = runner.invoke(app, ["cache", "du", "--cache-dir", str(tmp_path)])
    assert du.exit_code == 0 and "entries" in du.output
    nothing = runner.invoke(app, ["cache", "prune", "--cache-dir", str(tmp_path)])
    assert nothing.exit_code == 2 and "say what to prune" in nothing.output
    pruned = runner.invoke(app, ["cache", "prune", "--model", "builtin:digits_mlp", "--cache-dir", str(tmp_path)])
    assert pruned.exit_code == 0 and FeatureCache(tmp_path).entries() == []


def test_extract_and_score_commands(tmp_path):
    cache = ["--cache-dir", str(tmp_path)]
    common = ["--model", "builtin:digits_mlp", "--metrics", "clusterability", *cache]
    missing = runner.invoke(app, ["score", *common, "--quiet", "--out", str(tmp_path / "r.json")])
    assert missing.exit_code == 2 and "subclassbench extract" in missing.output and not (tmp_path / "r.json").exists()
    for shard in ("1/2", "2/2"):
        done = runner.invoke(app, ["extract", *common, "--shard", shard, "--quiet"])
        assert done.exit_code == 0, done.output
    scored = runner.invoke(app, ["score", *common, "--shards", "2", "--quiet", "--out", str(tmp_path / "r.json")])
    assert scored.exit_code == 0, scored.output
    bad = runner.invoke(app, ["extract", *common, "--shard", "3/2"])
    assert bad.exit_code == 2 and "--shard 3/2" in bad.output


# --------------------------------------------------------------------------- matrices


def write_matrix(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models.yaml"
    tasks = tmp_path / "tasks.yaml"
    models.write_text(yaml.safe_dump([{"model": "builtin:identity"}, {"model": "builtin:mlp"}]))
    tasks.write_text(
        yaml.safe_dump(
            [
                {"task": "digits-5", "metrics": ["clusterability"]},
                {"task": "synthetic-hier", "metrics": ["clusterability"]},
            ]
        )
    )
    return models, tasks


def _results(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): without_run(json.loads(p.read_text())) for p in sorted(folder.rglob("*.json"))}


def test_local_matrix_resumes(tmp_path):
    models, tasks = write_matrix(tmp_path)
    cells = load_matrix(models, tasks)
    assert len(cells) == 4
    report = run_matrix(cells, tmp_path / "out", "local", n_shards=2, cache_dir=str(tmp_path / "cache"))
    assert [o.status for o in report.outcomes] == ["done"] * 4
    before = features.FORWARD_BATCHES
    again = run_matrix(cells, tmp_path / "out", "local", n_shards=2, cache_dir=str(tmp_path / "cache"))
    assert [o.status for o in again.outcomes] == ["skipped"] * 4 and features.FORWARD_BATCHES == before


def test_a_failing_cell_is_retried_and_reported_without_losing_the_others(tmp_path):
    cells = [Cell("builtin:identity", "synthetic-hier", metrics=("clusterability",)), Cell("builtin:nope", "digits-5")]
    report = run_matrix(cells, tmp_path / "out", "local", cache_dir=str(tmp_path / "cache"))
    ok, failed = report.outcomes
    assert ok.status == "done" and Path(ok.result).is_file()
    assert failed.status == "failed" and failed.attempts == 2 and "nope" in failed.error


def test_bad_matrix_files(tmp_path):
    empty = tmp_path / "m.yaml"
    empty.write_text("[]")
    result = runner.invoke(app, ["run", "--models", str(empty), "--tasks", str(empty)])
    assert result.exit_code == 2 and "must list models" in result.output
    models, tasks = write_matrix(tmp_path)
    bad = runner.invoke(app, ["run", "--models", str(models), "--tasks", str(tasks), "--executor", "spark"])
    assert bad.exit_code == 2 and "unknown executor" in bad.output


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


def test_result_paths_of_different_cells_differ(tmp_path):
    from subclassbench.evaluation.matrix import result_path

    base = Cell("builtin:mlp", "synthetic-hier")
    variants = [
        base,
        Cell("builtin:mlp", "synthetic-hier", data="x"),
        Cell("builtin:mlp", "synthetic-hier", metrics=("transfer",)),
    ]
    paths = {result_path(c, tmp_path) for c in variants}
    assert len(paths) == 3 and all(
        p.parent.name == "builtin__mlp" and p.name.startswith("synthetic-hier-") for p in paths
    )
    assert result_path(base, tmp_path) == result_path(Cell("builtin:mlp", "synthetic-hier"), tmp_path)
