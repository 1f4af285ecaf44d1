"""The command line end to end, including every bad-input path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.results.result import read_result
from tests.conftest import REPO, without_run

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_default_evaluate_twice_is_identical(tmp_path):
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    first = run("evaluate", "--out", str(out1), "--quiet")
    assert first.exit_code == 0, first.output
    assert run("evaluate", "--out", str(out2), "--quiet").exit_code == 0
    a, b = read_result(out1), read_result(out2)
    assert without_run(a) == without_run(b)
    assert a["encoder"]["spec"] == "builtin:digits_cnn.digits5_coarse"
    assert a["task"]["name"] == "digits-5" and a["task"]["n_samples"] == 540
    assert [layer["name"] for layer in a["layers"]] == ["stem", "block1", "block2", "embedding"]
    # A coarse-trained encoder keeps subclass structure well above chance (AMI 0).
    assert a["summary"]["best_ami"] > 0.3


def test_evaluate_prints_the_per_layer_table(tmp_path):
    result = run("evaluate", "--out", str(tmp_path / "r.json"), "--layers", "block1,embedding")
    assert result.exit_code == 0, result.output
    assert "ID acc" in result.output and "subpop refit" in result.output and "recon acc" in result.output
    assert "subpopulation shift (same classes, new subclasses; not OOD): shift" in result.output  # no OOD set
    assert "OOD transfer: the task lists no OOD set" in result.output
    result = run(
        "evaluate", "--out", str(tmp_path / "r.json"), "--layers", "block1,embedding", "--metrics", "clusterability"
    )
    assert result.exit_code == 0, result.output
    assert "AMI" in result.output and "within-sup acc" in result.output
    assert "block1" in result.output and "stem " not in result.output
    assert [layer["name"] for layer in read_result(tmp_path / "r.json")["layers"]] == ["block1", "embedding"]


def test_evaluate_on_image_folder_task(tmp_path, tiny_image_task, tiny_image_folder):
    out = tmp_path / "tiny.json"
    result = run(
        "evaluate",
        "--model",
        "builtin:cifar_resnet20",
        "--task",
        str(tiny_image_task),
        "--data",
        str(tiny_image_folder),
        "--out",
        str(out),
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    data = read_result(out)
    assert data["task"]["n_samples"] == 40 and len(data["layers"]) == 11


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "builtin:nope"], "unknown builtin architecture 'nope'"),
        (["--model", "nope"], "needs a source prefix"),
        (["--task", "imagenet-99"], "unknown task 'imagenet-99'"),
        (["--layers", "block9"], "unknown layer 'block9'"),
        (["--task", "cifar10-5", "--model", "builtin:cifar_resnet20"], "needs its images: pass --data PATH"),
        (["--task", "cifar10-5", "--data", "/nonexistent/cifar.npz"], "does not exist"),
        (
            ["--model", "builtin:cifar_resnet20", "--weights", "/nonexistent.th"],
            "weights file /nonexistent.th not found",
        ),
        (["--model", "builtin:digits_mlp", "--weights", "WRONG"], "do not fit builtin:digits_mlp"),
        (["--split", "holdout"], "has no split 'holdout'"),
        (["--metrics", "speed"], "unknown metric 'speed'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    if "WRONG" in args:  # the digits CNN's weights offered to the MLP
        from subclassbench.encoders.sources import packaged_weights_dir

        args = [
            str(packaged_weights_dir() / "digits_cnn.digits5_coarse.safetensors") if a == "WRONG" else a for a in args
        ]
    out = tmp_path / "result.json"
    result = run("evaluate", *args, "--out", str(out), "--quiet")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_console_script_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "subclassbench", "evaluate", "--task", "nope", "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown task 'nope'")
    assert "Traceback" not in proc.stderr


def test_tasks_list_and_show():
    listing = run("tasks")
    assert listing.exit_code == 0
    for name in ("digits-5", "cifar10-5", "cifar10-5-semantic", "synthetic-hier"):
        assert name in listing.output
    shown = run("tasks", "show", "cifar10-5-semantic", "--json")
    assert shown.exit_code == 0
    data = json.loads(shown.output)
    assert data["name"] == "cifar10-5-semantic" and len(data["fingerprint"]) == 64
    assert data["superclasses"][4] == {
        "name": "ship/truck",
        "id": 4,
        "subclasses": [8, 9],
        "subclass_names": ["ship", "truck"],
        "source": [8],
        "target": [9],
    }
    assert data["data_hashed"] is False
    digits = json.loads(run("tasks", "show", "digits-5", "--json").output)
    assert digits["data_hashed"] is True and digits["fingerprint"] != digits["definition_fingerprint"]
    assert run("tasks", "show", "nope").exit_code == 2


def test_layers_and_encoders_commands():
    layers = run("layers", "builtin:cifar_resnet20")
    assert layers.exit_code == 0
    assert layers.output.split() == ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)] + ["embedding"]
    listing = run("encoders")
    assert "builtin:digits_cnn" in listing.output and "digits5_coarse" in listing.output


def test_out_folder_is_refused_before_any_work(tmp_path):
    result = run("evaluate", "--out", str(tmp_path), "--quiet")
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_default_paths_of_different_weights_do_not_collide(tmp_path, monkeypatch):
    from subclassbench.evaluation.pipeline import default_output_path

    base = {"task": {"name": "cifar10-5", "split": "test"}}
    a = {
        **base,
        "encoder": {"spec": "builtin:cifar_resnet20", "tag": None, "pretrained": True, "weights": {"sha256": "a" * 64}},
    }
    b = {
        **base,
        "encoder": {"spec": "builtin:cifar_resnet20", "tag": None, "pretrained": True, "weights": {"sha256": "b" * 64}},
    }
    r = {**base, "encoder": {"spec": "builtin:cifar_resnet20", "tag": None, "pretrained": False, "weights": None}}
    paths = {default_output_path(x) for x in (a, b, r)}
    assert len(paths) == 3
    assert str(default_output_path(r)).endswith("builtin__cifar_resnet20-random/cifar10-5.json")
