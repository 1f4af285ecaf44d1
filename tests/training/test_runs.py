"""Runs files (`train-runs`): what a file stands for, bad files, local runs equal `train`, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.tasks.task import load_task
from subclassbench.training.runs import load_runs, train_runs
from subclassbench.training.trainer import Recipe, train

runner = CliRunner()

RUNS = """
- task: digits-5
  arch: digits_cnn
  labels: [superclass, subclass]
  seed: [0, 1]
  epochs: 1
  batch_size: 128
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.yaml"
    path.write_text(text)
    return path


def test_an_entry_stands_for_the_product_of_its_lists(tmp_path):
    runs = load_runs(write(tmp_path, RUNS), tmp_path / "out")
    names = [Path(r.out).name for r in runs]
    assert names == [
        "digits-5-digits_cnn-superclass-s0",
        "digits-5-digits_cnn-superclass-s1",
        "digits-5-digits_cnn-subclass-s0",
        "digits-5-digits_cnn-subclass-s1",
    ]
    assert all(dict(r.recipe) == {"epochs": 1, "batch_size": 128} for r in runs)
    norms = load_runs(write(tmp_path, "- {task: digits-5, arch: cifar_resnet20, norm: [bn, ln], lr: 1}"), tmp_path)
    assert [Path(r.out).name for r in norms] == ["digits-5-cifar_resnet20-bn-superclass-s0",
                                                 "digits-5-cifar_resnet20-ln-superclass-s0"]  # fmt: skip
    assert dict(norms[0].recipe) == {"lr": 1.0}  # an integer learning rate is read as the float it means


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[]", "must list runs"),
        ("- {task: digits-5}", "needs 'task' and 'arch'"),
        ("- {task: digits-5, arch: digits_cnn, epoch: 3}", "unknown field 'epoch'"),
        ("- {task: digits-5, arch: digits_cnn, seed: [0, x]}", "'seed' must be a int"),
        ("- {task: digits-5, arch: digits_cnn, seed: []}", "'seed' is an empty list"),
        ("- {task: digits-5, arch: digits_cnn, epochs: 1.5}", "'epochs' must be a int"),
        ("- {task: digits-5, arch: digits_cnn, data: [a]}", "'data' must be a string"),
        ("- {task: digits-5, arch: digits_cnn}\n- {task: digits-5, arch: digits_cnn, epochs: 2}", "two runs would"),
        ("!!python/object/apply:os.system ['echo hacked']", "could not determine a constructor"),
    ],
)
def test_bad_runs_files_are_refused_with_the_fix(tmp_path, text, match):
    with pytest.raises(SubclassbenchError, match=match):
        load_runs(write(tmp_path, text), tmp_path / "out")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- {task: digits-5, arch: nope}", "unknown architecture 'nope'"),
        ("- {task: no-such-task, arch: digits_cnn}", "no-such-task"),
        ("- {task: digits-5, arch: digits_cnn, labels: medium}", "--labels must be one of"),
        ("- {task: digits-5, arch: digits_cnn, augment: twist}", "--augment must be one of"),
    ],
)
def test_runs_are_checked_before_any_training(tmp_path, text, match):
    result = runner.invoke(app, ["train-runs", "--runs", str(write(tmp_path, text)), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and match in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_gpus_need_ray_and_the_executor_must_be_known(tmp_path):
    runs = load_runs(write(tmp_path, RUNS), tmp_path / "out")
    with pytest.raises(SubclassbenchError, match="use it with --executor ray"):
        train_runs(runs, "local", gpus_per_task=1)
    with pytest.raises(SubclassbenchError, match="unknown executor"):
        train_runs(runs, "spark")


def test_local_runs_are_the_runs_train_writes_and_resume(tmp_path):
    path = write(tmp_path, RUNS)
    result = runner.invoke(app, ["train-runs", "--runs", str(path), "--out", str(tmp_path / "out"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.output)["runs"]
    assert [o["status"] for o in outcomes] == ["done"] * 4 and all(o["device"] == "cpu" for o in outcomes)
    alone = train(load_task("digits-5"), "digits_cnn", "subclass", tmp_path / "alone",
                  Recipe(epochs=1, batch_size=128, seed=1), progress=False)  # fmt: skip
    card = json.loads((tmp_path / "out" / "digits-5-digits_cnn-subclass-s1" / "card.json").read_text())
    assert card["weights_sha256"] == alone["weights_sha256"] and card["recipe"] == alone["recipe"]
    # A second pass restores each finished run at its last epoch: the same weights, no new training.
    again = runner.invoke(app, ["train-runs", "--runs", str(path), "--out", str(tmp_path / "out"), "--json", "-q"])
    assert [o["train_seconds"] for o in json.loads(again.output)["runs"]] == [o["train_seconds"] for o in outcomes]
    assert json.loads((tmp_path / "out" / "digits-5-digits_cnn-subclass-s1" / "card.json").read_text()) == card


def test_a_failing_run_is_retried_reported_and_the_others_finish(tmp_path):
    out = tmp_path / "out"
    blocked = out / "digits-5-digits_cnn-superclass-s1"
    blocked.mkdir(parents=True)
    (blocked / "notes.txt").write_text("not a run's file")  # train refuses a folder holding foreign files
    result = runner.invoke(app, ["train-runs", "--runs", str(write(tmp_path, RUNS)), "--out", str(out), "-q"])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["done", "failed", "done", "done"]
    assert "holds files that are not a subclassbench run's" in lines[1] and "after 2 attempts" in lines[1]
    assert (blocked / "notes.txt").read_text() == "not a run's file"
