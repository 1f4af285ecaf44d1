"""Submissions (submit / validate / verify) and the leaderboard build, on digits-5 submissions made in the test."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.leaderboard.board import build
from tests.conftest import digits_mlp_weights

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """submissions/ with two valid digits-5 submissions: a packaged tag and a weights file."""
    root = tmp_path_factory.mktemp("sub")
    subs = root / "submissions"
    subs.mkdir()
    common = ["--task", "digits-5", "--metrics", "clusterability", "--submissions", subs, "--quiet"]
    meta = ["--training-data", "digits-5 train split", "--license", "MIT", "--citation", "This test suite."]
    first = cli(
        "submit",
        "--name",
        "cnn-coarse",
        "--model",
        "builtin:digits_cnn.digits5_coarse",
        *common,
        *meta,
        "--labels",
        "superclass",
        "--label-task",
        "digits-5",
    )
    assert first.exit_code == 0, first.output
    weights = digits_mlp_weights(root / "mlp.safetensors")
    second = cli(
        "submit",
        "--name",
        "mlp-random",
        "--model",
        "builtin:digits_mlp",
        "--weights",
        weights,
        *common,
        *meta,
        "--labels",
        "none",
    )
    assert second.exit_code == 0, second.output
    return subs


@pytest.fixture
def subs(made: Path, tmp_path: Path) -> Path:
    """A private copy each test may break."""
    copy = tmp_path / "submissions"
    shutil.copytree(made, copy)
    return copy


def test_submit_writes_a_valid_submission_with_a_committed_layer(subs):
    folder = subs / "mlp-random"
    model = yaml.safe_load((folder / "model.yaml").read_text())
    assert model["encoder"]["weights"]["file"] == "weights.safetensors"
    assert model["training"] == {"data": "digits-5 train split", "labels": "none"}
    result = json.loads((folder / "results" / "digits-5.json").read_text())
    assert result["encoder"]["weights"]["path"].endswith("mlp-random/weights.safetensors")
    summary = result["summary"]
    assert summary["selection"]["split"] == "val" and len(summary["selection"]["per_layer_ami"]) == len(
        result["layers"]
    )
    assert summary["committed_layer"] in [layer["name"] for layer in result["layers"]]
    assert summary["committed_gap"] == pytest.approx(summary["best_ami"] - summary["committed_ami"])
    out = cli("validate", subs)
    assert out.exit_code == 0 and "2 submission(s), 2 result(s) valid (0 stale)" in out.output


def _error(subs: Path) -> str:
    out = cli("validate", subs)
    assert out.exit_code == 2, out.output
    return out.output


def test_malformed_yaml(subs):
    (subs / "cnn-coarse" / "model.yaml").write_text("name: [unclosed\n")
    assert "cannot parse YAML in" in _error(subs)


def test_missing_field(subs):
    path = subs / "cnn-coarse" / "model.yaml"
    model = yaml.safe_load(path.read_text())
    del model["license"]
    path.write_text(yaml.safe_dump(model))
    assert "'license' is a required property" in _error(subs)


def test_superclass_labels_need_their_task(subs):
    path = subs / "cnn-coarse" / "model.yaml"
    model = yaml.safe_load(path.read_text())
    del model["training"]["label_task"]
    path.write_text(yaml.safe_dump(model))
    assert "training.label_task must name the task" in _error(subs)


def test_wrong_sha256(subs):
    weights = subs / "mlp-random" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert "does not match model.yaml's" in _error(subs)


def test_result_with_other_weights(subs):
    path = subs / "mlp-random" / "results" / "digits-5.json"
    result = json.loads(path.read_text())
    result["encoder"]["weights"]["sha256"] = "0" * 64
    path.write_text(json.dumps(result))
    assert "other weights than model.yaml declares" in _error(subs)


def test_result_for_an_unknown_task(subs):
    results = subs / "cnn-coarse" / "results"
    result = json.loads((results / "digits-5.json").read_text())
    result["task"]["name"] = "digits-7"
    result["samples"]["file"] = "digits-7.samples.npz"  # moved together with its per-sample file
    (results / "digits-5.samples.npz").rename(results / "digits-7.samples.npz")
    (results / "digits-5.json").unlink()
    (results / "digits-7.json").write_text(json.dumps(result))
    assert "result for unknown task 'digits-7'" in _error(subs)


def test_malformed_result(subs):
    (subs / "cnn-coarse" / "results" / "digits-5.json").write_text('{"schema_version": "1.0"}')
    assert "digits-5.json" in _error(subs)


def test_stale_fingerprint_is_listed_apart(subs, tmp_path):
    path = subs / "cnn-coarse" / "results" / "digits-5.json"
    result = json.loads(path.read_text())
    result["task"]["definition_fingerprint"] = "f" * 64
    path.write_text(json.dumps(result))
    out = cli("validate", subs)
    assert out.exit_code == 0 and "stale (task digits-5 changed" in out.output and "(1 stale)" in out.output
    build(subs, tmp_path / "lb")
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert [r["submission"] for r in board["tasks"]["digits-5"]] == ["mlp-random"]
    assert [r["submission"] for r in board["stale"]] == ["cnn-coarse"]
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert "## Stale results (not ranked)" in readme and "`cnn-coarse` on `digits-5`" in readme


def test_leaderboard_build_is_deterministic_and_ranked(made, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    build(made, first)
    build(made, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    figures = ["v2/digits-5.pdf", "v2/digits-5.png", "v2/digits-5.svg"]
    site = ["site/app.js", "site/index.html", "site/style.css"]
    assert [str(f) for f in files] == ["CHANGELOG.md", "README.md", "leaderboard.json", *site, *figures]
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f
    rows = json.loads((first / "leaderboard.json").read_text())["tasks"]["digits-5"]
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["committed_ami"] >= rows[1]["committed_ami"]
    assert re.search(r"^\| rank +\| encoder", (first / "README.md").read_text(), re.M)
    assert build(made, first) == []  # nothing to rewrite, and no second changelog entry
    assert (first / "CHANGELOG.md").read_text().count("## v2") == 1


def test_check_catches_a_hand_edit(made, tmp_path):
    out = tmp_path / "lb"
    assert cli("leaderboard", "build", "--submissions", made, "--out", out).exit_code == 0
    ok = cli("leaderboard", "build", "--check", "--submissions", made, "--out", out)
    assert ok.exit_code == 0 and "up to date" in ok.output
    readme = out / "README.md"
    readme.write_text(readme.read_text().replace("cnn-coarse", "cnn-coarse-best", 1))
    bad = cli("leaderboard", "build", "--check", "--submissions", made, "--out", out)
    assert bad.exit_code == 2 and "README.md" in bad.output and "out of date" in bad.output
    (out / "v2" / "old-task.png").write_bytes(b"\x89PNG")
    (out / "v2" / "old-task.svg").write_bytes(b"<svg/>")
    assert cli("leaderboard", "build", "--submissions", made, "--out", out).exit_code == 0
    assert not (out / "v2" / "old-task.png").exists() and not (out / "v2" / "old-task.svg").exists()
    assert cli("leaderboard", "build", "--check", "--submissions", made, "--out", out).exit_code == 0


def test_an_invalid_submission_stops_the_build_and_writes_nothing(subs, tmp_path):
    (subs / "cnn-coarse" / "model.yaml").write_text("name: [unclosed\n")
    out = cli("leaderboard", "build", "--submissions", subs, "--out", tmp_path / "lb")
    assert out.exit_code == 2 and out.output.startswith("error: cannot build the leaderboard")
    assert not (tmp_path / "lb").exists()


def test_verify_reruns_and_compares(subs):
    ok = cli("verify", subs / "mlp-random")
    assert ok.exit_code == 0 and "digits-5: OK" in ok.output
    path = subs / "mlp-random" / "results" / "digits-5.json"
    result = json.loads(path.read_text())
    result["layers"][0]["clusterability"]["ami"] += 0.2
    path.write_text(json.dumps(result))
    bad = cli("verify", subs / "mlp-random")  # a hand edit no longer even reads
    assert bad.exit_code == 2 and "edited by hand" in bad.output


def test_verify_compares_layers_and_summaries_nan_included(subs):
    import copy

    from subclassbench.leaderboard.submissions import compare_results
    from subclassbench.results.result import Result

    submitted = Result.read(subs / "mlp-random" / "results" / "digits-5.json")
    assert compare_results(submitted, submitted) == []
    moved = copy.deepcopy(submitted.doc)
    moved["layers"][0]["clusterability"]["ami"] += 0.2
    moved["summary"]["committed_ami"] = float("nan")
    found = [str(d) for d in compare_results(submitted, Result(moved))]
    assert any("ami: submitted" in d for d in found) and any("summary.committed_ami" in d for d in found)


def test_submit_refuses_a_different_model_under_an_existing_name(subs):
    out = cli(
        "submit",
        "--name",
        "cnn-coarse",
        "--model",
        "builtin:digits_mlp",
        "--task",
        "digits-5",
        "--submissions",
        subs,
        "--quiet",
    )
    assert out.exit_code == 2 and "choose another --name" in out.output


def test_new_submission_needs_its_metadata(subs):
    out = cli("submit", "--name", "x", "--model", "builtin:digits_mlp", "--task", "digits-5", "--submissions", subs)
    assert out.exit_code == 2 and "--labels" in out.output and not (subs / "x").exists()


def test_a_transfer_only_result_is_listed_without_a_curve(subs, tmp_path):
    meta = ["--training-data", "none", "--license", "MIT", "--citation", "This test suite.", "--labels", "none"]
    out = cli(
        "submit",
        "--name",
        "cnn-transfer",
        "--model",
        "builtin:digits_cnn",
        "--task",
        "digits-5",
        "--metrics",
        "transfer",
        "--submissions",
        subs,
        "--quiet",
        *meta,
    )
    assert out.exit_code == 0, out.output
    build(subs, tmp_path / "lb")
    rows = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["tasks"]["digits-5"]
    assert rows[-1]["submission"] == "cnn-transfer" and rows[-1]["committed_ami"] is None
    assert rows[-1]["subpop_retained"] is not None  # digits-5's transfer is a subpopulation shift
    assert rows[-1]["ood_retained"] is None and rows[-1]["tunnel"] is None  # … and no OOD set


def test_submit_with_missing_weights_is_one_line(subs):
    out = cli(
        "submit",
        "--name",
        "y",
        "--model",
        "builtin:digits_mlp",
        "--weights",
        "nope.safetensors",
        "--task",
        "digits-5",
        "--submissions",
        subs,
    )
    assert out.exit_code == 2 and "do not exist" in out.output and not (subs / "y").exists()


def test_resubmitting_keeps_the_recorded_data_note(subs):
    path = subs / "cnn-coarse" / "model.yaml"
    model = yaml.safe_load(path.read_text())
    model["evaluation_data"]["digits-5"] = "scikit-learn digits, as shipped"
    path.write_text(yaml.safe_dump(model))
    out = cli(
        "submit",
        "--name",
        "cnn-coarse",
        "--model",
        "builtin:digits_cnn.digits5_coarse",
        "--task",
        "digits-5",
        "--metrics",
        "clusterability",
        "--submissions",
        subs,
        "--quiet",
    )
    assert out.exit_code == 0, out.output
    assert yaml.safe_load(path.read_text())["evaluation_data"]["digits-5"] == "scikit-learn digits, as shipped"


def test_changelog_lists_what_changed(subs, tmp_path):
    out = tmp_path / "lb"
    build(subs, out)
    shutil.rmtree(subs / "mlp-random")
    build(subs, out)
    log = (out / "CHANGELOG.md").read_text()
    assert log.count("## v2") == 2
    newest = log.split("## v2")[1]
    assert "- removed digits-5: mlp-random" in newest and "- changed digits-5: cnn-coarse (rank 1" in newest
