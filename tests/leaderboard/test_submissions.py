"""Submissions (submit / validate / verify, subclassbench.leaderboard.submissions) on digits-5 submissions made
in the test, with several training seeds (the board built from them: test_board.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.leaderboard.board import build, collect
from subclassbench.results.result import read_result
from tests.conftest import digits_mlp_weights
from tests.results.conftest import _earlier_method

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_a_declared_unseen_evaluation_split_reaches_model_yaml_and_the_result(subs):
    folder = subs / "cnn-coarse"
    assert yaml.safe_load((folder / "model.yaml").read_text())["training"]["saw_evaluation_split"] is False
    selection = read_result(folder / "results" / "digits-5.json").summary["selection"]
    assert selection["seen_in_training"] is False and selection["seen_basis"].startswith("declared by the submitter")


def test_submit_writes_a_valid_submission_with_a_committed_layer(subs):
    folder = subs / "mlp-random"
    model = yaml.safe_load((folder / "model.yaml").read_text())
    assert model["encoder"]["weights"]["file"] == "weights.safetensors"
    assert model["training"] == {"data": "digits-5 train split", "labels": "none"}
    result = json.loads((folder / "results" / "digits-5.json").read_text())
    assert result["encoder"]["weights"]["path"].endswith("mlp-random/weights.safetensors")
    summary = result["summary"]
    # Protocol v3: the layer is cross-fitted on the test split's halves; an untrained encoder saw none of them.
    selection = summary["selection"]
    assert selection["split"] == "test" and selection["method"] == "crossfit"
    assert all(len(selection["per_layer_ami"][h]) == len(result["layers"]) for h in ("A", "B"))
    # Random weights in a file, nothing declared: not known (a declaration would say; see the next test).
    assert selection["seen_in_training"] is None and "not recorded" in selection["seen_basis"]
    assert set(summary["committed_layers"]) <= {layer["name"] for layer in result["layers"]}
    best_a, best_b = max(selection["per_layer_ami"]["A"]), max(selection["per_layer_ami"]["B"])
    assert summary["committed_gap"] == pytest.approx((best_a + best_b) / 2 - summary["committed_ami"])
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


def test_rerun_brings_a_stale_result_to_the_current_protocol_in_place(subs):
    from subclassbench.leaderboard.submissions import rerun
    from subclassbench.scoring.protocol import protocol_fingerprint, protocol_v2_fingerprint

    path = subs / "cnn-coarse" / "results" / "digits-5.json"
    before = json.loads(path.read_text())
    stale = {**before, "protocol": {**before["protocol"], "version": "2", "fingerprint": protocol_v2_fingerprint()}}
    path.write_text(json.dumps(stale))
    assert "(1 stale)" in cli("validate", subs).output
    assert rerun(subs / "cnn-coarse") == [path]
    after = json.loads(path.read_text())
    assert after["protocol"]["fingerprint"] == protocol_fingerprint()
    assert after["summary"] == before["summary"] and after["layers"] == before["layers"]  # same protocol, same numbers
    assert after["encoder"]["weights"] == before["encoder"]["weights"]  # the portable weights label is kept
    out = cli("validate", subs)
    assert out.exit_code == 0 and "(0 stale)" in out.output


def test_verify_reruns_and_compares(subs):
    ok = cli("verify", subs / "mlp-random")
    assert ok.exit_code == 0 and "digits-5: OK" in ok.output
    path = subs / "mlp-random" / "results" / "digits-5.json"
    result = json.loads(path.read_text())
    result["layers"][0]["clusterability"]["ami"] += 0.2
    path.write_text(json.dumps(result))
    bad = cli("verify", subs / "mlp-random")  # a hand edit no longer even reads
    assert bad.exit_code == 2 and "edited by hand" in bad.output


def test_verify_takes_weights_only_for_weights_that_are_not_committed(subs, tmp_path):
    other = digits_mlp_weights(tmp_path / "other.safetensors", 5)
    out = cli("verify", subs / "mlp-random", "--weights", other)
    assert out.exit_code == 2 and "commits its weights file: drop --weights" in out.output


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


# --------------------------------------------------------------------------- seeds


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeds")
    subs = root / "submissions"
    common = ["--task", "digits-5", "--metrics", "clusterability", "--submissions", subs, "--quiet"]
    meta = ["--training-data", "none", "--license", "MIT", "--citation", "This test suite.", "--labels", "none"]
    for name, seed in (("mlp", None), ("mlp", 1), ("mlp", 2), ("mlp-other", None)):
        weights = digits_mlp_weights(root / f"{name}-{seed}.safetensors", 0 if seed is None else seed)
        extra = [] if seed is None else ["--seed", seed]
        if name == "mlp-other":
            weights = digits_mlp_weights(root / "other.safetensors", 7)
        out = cli(
            "submit", "--name", name, "--model", "builtin:digits_mlp", "--weights", weights, *common, *meta, *extra
        )
        assert out.exit_code == 0, out.output
    return subs


def test_a_submission_holds_seeds_and_its_row_shows_their_mean_spread_and_interval(seeded, tmp_path):
    model = yaml.safe_load((seeded / "mlp" / "model.yaml").read_text())
    assert [e["seed"] for e in model["encoder"]["seeds"]] == [1, 2]
    assert (seeded / "mlp" / "results" / "digits-5.seed-2.json").is_file()
    current, _ = collect(seeded)
    row = next(r for r in current["digits-5"] if r["submission"] == "mlp")
    amis = [read_result(p).summary["committed_ami"] for p in sorted((seeded / "mlp" / "results").glob("*.json"))]
    assert row["seeds"]["n"] == 3
    assert row["committed_ami"] == pytest.approx(np.mean(amis))
    assert row["seeds"]["std"]["committed_ami"] == pytest.approx(np.std(amis, ddof=1))
    low, high = row["ci95"]["committed_ami"]
    assert low <= row["committed_ami"] <= high
    out = tmp_path / "board"
    build(seeded, out)
    text = (out / "README.md").read_text()
    assert "(3 seeds)" in text and "paired bootstrap over the shared test images" in text
    assert build(seeded, out, check=True) == []  # seeded: a rebuild is byte-stable


def test_seed_files_must_be_declared_and_named_for_their_seed(seeded, tmp_path):
    subs = tmp_path / "s"
    shutil.copytree(seeded, subs)
    results = subs / "mlp" / "results"
    doc = json.loads((results / "digits-5.seed-2.json").read_text())
    doc["samples"]["file"] = "digits-5.seed-9.samples.npz"  # a consistent copy, under an undeclared seed
    (results / "digits-5.seed-9.json").write_text(json.dumps(doc))
    shutil.copy(results / "digits-5.seed-2.samples.npz", results / "digits-5.seed-9.samples.npz")
    out = cli("validate", subs)
    assert out.exit_code == 2 and "seed 9" in out.output
    (results / "digits-5.seed-9.json").unlink()
    model = yaml.safe_load((subs / "mlp" / "model.yaml").read_text())
    model["encoder"]["seeds"][0]["weights"]["file"] = "weights.seed-2.safetensors"  # seed 1 under seed 2's name
    (subs / "mlp" / "model.yaml").write_text(yaml.safe_dump(model))
    out = cli("validate", subs)
    assert out.exit_code == 2 and "weights must be weights.seed-1.safetensors" in out.output


def test_seed_needs_an_existing_submission(seeded, tmp_path):
    weights = digits_mlp_weights(tmp_path / "w.safetensors", 3)
    out = cli(
        "submit", "--name", "fresh", "--model", "builtin:digits_mlp", "--weights", weights, "--task", "digits-5",
        "--seed", "1", "--submissions", seeded, "--quiet",
    )  # fmt: skip
    assert out.exit_code == 2 and out.output.startswith("error:") and "existing submission" in out.output


def test_validate_asks_for_current_intervals(seeded, tmp_path, monkeypatch):
    subs = tmp_path / "submissions"
    shutil.copytree(seeded, subs)
    assert cli("validate", subs).exit_code == 0
    _earlier_method(subs / "mlp" / "results" / "digits-5.seed-1.json", monkeypatch)
    out = cli("validate", subs)
    assert out.exit_code != 0 and "has intervals from an earlier bootstrap method" in out.output
    assert "subclassbench intervals" in out.output


# --------------------------------------------------------------------------- replayed evidence


def _errors(subs: Path) -> list[str]:
    out = cli("validate", subs)
    assert out.exit_code == 2, out.output
    return [line for line in out.output.splitlines() if line.startswith("error:")]


def test_a_zero_padded_seed_file_does_not_count_twice(seeded, tmp_path):
    subs = tmp_path / "submissions"
    shutil.copytree(seeded, subs)
    results = subs / "mlp" / "results"
    doc = json.loads((results / "digits-5.seed-1.json").read_text())
    doc["samples"]["file"] = "digits-5.seed-01.samples.npz"  # renamed together, as a replay would be
    (results / "digits-5.seed-01.json").write_text(json.dumps(doc))
    shutil.copy(results / "digits-5.seed-1.samples.npz", results / "digits-5.seed-01.samples.npz")
    (errors,) = _errors(subs)
    assert "digits-5.seed-01.json: is not named canonically; name it digits-5.seed-1.json" in errors


def test_two_seeds_with_the_same_weights_are_refused(seeded, tmp_path):
    subs = tmp_path / "submissions"
    shutil.copytree(seeded, subs)
    model_file = subs / "mlp" / "model.yaml"
    model = yaml.safe_load(model_file.read_text())
    first = model["encoder"]["weights"]
    model["encoder"]["seeds"][1]["weights"]["sha256"] = first["sha256"]  # seed 2 claims seed 0's network
    shutil.copy(subs / "mlp" / first["file"], subs / "mlp" / model["encoder"]["seeds"][1]["weights"]["file"])
    model_file.write_text(yaml.safe_dump(model, sort_keys=False))
    errors = _errors(subs)
    assert any("seed 2 has the same weights as the first seed" in e for e in errors), errors


def test_the_same_model_under_a_second_name_is_refused(seeded, tmp_path):
    subs = tmp_path / "submissions"
    shutil.copytree(seeded, subs)
    twin = subs / "mlp-twin"
    shutil.copytree(subs / "mlp-other", twin)
    model = yaml.safe_load((twin / "model.yaml").read_text())
    model["name"] = "mlp-twin"
    (twin / "model.yaml").write_text(yaml.safe_dump(model, sort_keys=False))
    (error,) = _errors(subs)
    assert "is the same model as submissions/mlp-other on digits-5" in error and "mlp-twin" in error


@pytest.mark.parametrize("kind", ["link-out", "fifo", "linked-folder"])
def test_links_and_special_files_in_a_submission_are_refused_before_anything_is_read(subs, tmp_path, kind):
    """A pull request could add a link to a file elsewhere on the CI machine (read or hashed by validate) or a
    FIFO (which would block it): validate names each one and reads nothing else in that folder."""
    folder = subs / "mlp-random"
    secret = tmp_path / "secret.json"
    secret.write_text('{"not": "yours"}')
    if kind == "link-out":
        target = folder / "results" / "digits-5.json"
        target.unlink()
        target.symlink_to(secret)
    elif kind == "fifo":
        import os

        os.mkfifo(folder / "weights.safetensors.part")
    else:
        moved = tmp_path / "elsewhere"
        shutil.move(str(folder), moved)
        folder.symlink_to(moved)
    out = _error(subs)  # returns at all: nothing blocked
    assert ("is a link" if kind != "fifo" else "is not a regular file (a FIFO") in out
    assert "yours" not in out  # the linked file's content was never read into a message


def test_submit_takes_labels_label_task_and_training_data_from_a_run_card(tmp_path):
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    run = tmp_path / "run"
    train(load_task("digits-5"), "digits_mlp", "superclass", run, Recipe(epochs=0, seed=3), progress=False)
    subs = tmp_path / "submissions"
    common = ["submit", "--model", "builtin:digits_mlp", "--weights", run, "--task", "digits-5", "--metrics",
              "clusterability", "--license", "MIT", "--citation", "c", "--submissions", subs, "-q"]  # fmt: skip
    contradicting = cli(*common, "--name", "wrong", "--labels", "fine")
    assert contradicting.exit_code == 2 and "contradicts" in contradicting.output and not (subs / "wrong").exists()
    out = cli(*common, "--name", "from-card")
    assert out.exit_code == 0, out.output
    training = yaml.safe_load((subs / "from-card" / "model.yaml").read_text())["training"]
    assert training["labels"] == "superclass" and training["label_task"] == "digits-5"
    assert training["data"].startswith("digits-5 train split (1,077 images)") and "seed 3" in training["data"]


def test_the_rerun_script_refuses_a_missing_submission_in_one_line(tmp_path, capsys):
    from tests.conftest import load_script

    assert load_script("rerun_submissions").main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "model.yaml is missing" in err


def test_protocol_shift_reads_two_result_folders(subs, tmp_path, capsys):
    from tests.conftest import load_script

    archived = tmp_path / "archived" / "cnn-coarse"
    archived.mkdir(parents=True)
    doc = json.loads((subs / "cnn-coarse" / "results" / "digits-5.json").read_text())
    doc["summary"]["committed_ami"] -= 0.1  # as an older protocol might have scored it
    (archived / "digits-5.json").write_text(json.dumps(doc))
    assert load_script("protocol_shift").main([str(tmp_path / "archived"), str(subs)]) == 0
    out = capsys.readouterr().out
    assert "| cnn-coarse | digits-5 |" in out and "+0.100" in out and "1 results" in out
