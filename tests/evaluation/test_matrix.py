"""Model × task matrices (subclassbench.evaluation.matrix), local (on Ray: tests/test_ray.py)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.evaluation.matrix import Cell, load_matrix, run_matrix
from subclassbench.features import extraction as features

runner = CliRunner()


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
