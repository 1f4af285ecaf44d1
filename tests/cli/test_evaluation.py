"""`subclassbench evaluate`, `extract`, `score`, `cache` and `run` on the command line
(subclassbench.cli.evaluation), including every bad-input path and run's progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core import progress
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.features.cache import FeatureCache
from subclassbench.results.result import read_result
from tests.conftest import without_run

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
    result = run("evaluate", "--out", str(tmp_path / "r.json"), "--layers", "block1,embedding", "--wide")
    assert result.exit_code == 0, result.output
    assert "ID acc" in result.output and "refit acc" in result.output and "recon acc" in result.output
    assert "subpopulation shift (same classes, new subclasses; not OOD): shift" in result.output  # no OOD set
    assert "OOD transfer: the task lists no OOD set" in result.output
    result = run(
        "evaluate", "--out", str(tmp_path / "r.json"), "--layers", "block1,embedding", "--metrics", "clusterability",
        "--wide",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "AMI" in result.output and "oracle" in result.output and "ID acc" not in result.output
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
        from subclassbench.encoders.builtin import packaged_weights_dir

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


def test_out_folder_is_refused_before_any_work(tmp_path):
    result = run("evaluate", "--out", str(tmp_path), "--quiet")
    assert result.exit_code == 2 and "is a folder" in result.stderr


# --------------------------------------------------------------------------- progress of run


def cli(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


ALWAYS = {progress.ENV: "always"}  # CliRunner's stderr is no terminal: the override shows stage lines there


def test_run_counts_cells_and_keeps_its_json_clean(tmp_path):
    models, tasks = tmp_path / "models.yaml", tmp_path / "tasks.yaml"
    models.write_text(yaml.safe_dump([{"model": "builtin:identity"}, {"model": "builtin:nope"}]))
    tasks.write_text(yaml.safe_dump([{"task": "synthetic-hier", "metrics": ["clusterability"]}]))
    args = ["run", "--models", models, "--tasks", tasks, "--out", tmp_path / "out", "--cache-dir", tmp_path / "c"]
    result = cli(*args, "--json", env=ALWAYS)
    assert result.exit_code == 1  # one cell failed
    doc = json.loads(result.stdout)
    assert [c["status"] for c in doc["cells"]] == ["done", "failed"]
    err = result.stderr.splitlines()
    assert "run 1/2 builtin:identity × synthetic-hier: extracting shard 1/1" in err
    assert "run 1/2 builtin:identity × synthetic-hier: scoring" in err
    assert any(line.startswith("run 1/2 done: builtin:identity × synthetic-hier: ") for line in err)
    retried = "run 2/2 builtin:nope × synthetic-hier: extracting shard 1/1 (attempt 2: "
    assert any(line.startswith(retried) for line in err)
    assert any(line.startswith("run 2/2 failed: builtin:nope × synthetic-hier: ") for line in err)
    again = cli(*args, env=ALWAYS)  # the finished cell is skipped, and said to be
    assert any(line.startswith("run 1/2 skipped: builtin:identity") for line in again.stderr.splitlines())


# --------------------------------------------------------------------------- extract, score and cache


def request(cache_dir: Path, **kw) -> EvaluationRequest:
    base = {"model": "builtin:digits_mlp", "task": "digits-5", "metrics": ["clusterability"], "progress": False}
    return EvaluationRequest(**{**base, "cache_dir": str(cache_dir), **kw})


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


# --------------------------------------------------------------------------- one-line errors of --limit and --dtype


def test_limit_below_two_per_subclass_is_one_line():
    done = cli("evaluate", "--task", "digits-5", "--limit", "5", "-q")
    assert done.exit_code == 2 and "use --limit 20 or more" in done.output and "Traceback" not in done.output


def test_unknown_dtype_is_one_line():
    done = cli("evaluate", "--task", "digits-5", "--dtype", "fp8", "-q")
    assert done.exit_code == 2 and "use fp32 or bf16" in done.output
