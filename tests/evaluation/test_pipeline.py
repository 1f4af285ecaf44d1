"""The evaluation pipeline (subclassbench.evaluation.pipeline): deterministic results, the metric families
and what transfer needs, default result paths, the feature cache (hits, score from the cache alone, stale
keys), --limit results, and scoring workers (OOD sets: test_pipeline_ood.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import evaluate, extract
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.features import extraction as features
from subclassbench.features.extraction import ExtractionContext
from subclassbench.results.result import validate_result
from subclassbench.tasks.task import load_task
from tests.conftest import add_train_split_and_transfer, without_run

# --------------------------------------------------------------------------- determinism


def test_evaluate_is_deterministic_and_schema_valid():
    request = EvaluationRequest(model="builtin:identity", task="synthetic-hier", progress=False)
    a, b = evaluate(request), evaluate(request)
    validate_result(a)
    assert without_run(a) == without_run(b)
    assert [layer["name"] for layer in a["layers"]] == ["embedding"]
    assert a["layers"][0]["clusterability"]["ami"] > 0.5


# --------------------------------------------------------------------------- metric families


def test_evaluate_runs_both_families_by_default():
    result = evaluate(EvaluationRequest(model="builtin:mlp", task="synthetic-hier", progress=False))
    validate_result(result)
    assert result["metrics"] == ["clusterability", "transfer"]
    assert all({"clusterability", "transfer"} <= set(layer) for layer in result["layers"])
    summary = result["summary"]
    assert summary["ood_retained"] is None and summary["tunnel"] is None  # no OOD set: no OOD claim
    shift = summary["transfer"]["subpopulation_shift"]
    assert 0 < shift["subpop_refit"]["retained"] <= 100
    assert set(result["task"]["splits"]) == {"test", "train"}  # v3 chooses the layer on test: no val split
    assert summary["committed_layer"] in [layer["name"] for layer in result["layers"]]
    assert summary["selection"]["split"] == "test" and summary["selection"]["method"] == "crossfit"


def test_metrics_selection():
    only = evaluate(
        EvaluationRequest(model="builtin:identity", task="synthetic-hier", metrics=["transfer"], progress=False)
    )
    validate_result(only)
    assert only["metrics"] == ["transfer"] and "clusterability" not in only["layers"][0]
    with pytest.raises(SubclassbenchError, match="unknown metric 'speed'"):
        evaluate(EvaluationRequest(task="digits-5", metrics=["speed"], progress=False))


def test_transfer_needs_the_train_split(tiny_image_task, tiny_npz):
    add_train_split_and_transfer(tiny_image_task)
    request = EvaluationRequest(
        model="builtin:cifar_resnet20", task=str(tiny_image_task), data=str(tiny_npz), progress=False
    )
    # tiny_npz holds one split only: by default transfer is skipped with a note …
    result = evaluate(request)
    assert result["metrics"] == ["clusterability"] and any("transfer skipped" in n for n in result["notes"])
    # … and asking for it explicitly is an error.
    request.metrics = ["transfer"]
    with pytest.raises(SubclassbenchError, match="transfer needs the task's train split"):
        evaluate(request)


def test_task_without_transfer_rejects_explicit_transfer(tiny_image_task, tiny_npz):
    request = EvaluationRequest(task=str(tiny_image_task), data=str(tiny_npz), metrics=["transfer"], progress=False)
    with pytest.raises(SubclassbenchError, match="defines no transfer splits"):
        evaluate(request)


def test_transfer_end_to_end_on_an_image_folder_of_npz_splits(tiny_image_task, tmp_path):
    from tests.conftest import make_images

    add_train_split_and_transfer(tiny_image_task, expected_count=80)
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n, seed in (("train", 20, 1), ("test", 10, 0)):
        images, labels = make_images(n_per_class=n, seed=seed)
        np.savez(folder / f"tiny_{split}.npz", images=images, labels=labels)
    result = evaluate(
        EvaluationRequest(model="builtin:cifar_resnet20", task=str(tiny_image_task), data=str(folder), progress=False)
    )
    validate_result(result)
    assert result["metrics"] == ["clusterability", "transfer"]
    assert result["task"]["splits"]["train"]["n_samples"] == 80
    transfer = result["summary"]["transfer"]
    assert transfer["n_id_train"] == 40 and transfer["subpopulation_shift"]["n_shift"] == 20


# --------------------------------------------------------------------------- default result paths


def test_default_paths_of_different_weights_do_not_collide(tmp_path, monkeypatch):
    from subclassbench.evaluation.outputs import default_output_path

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


# --------------------------------------------------------------------------- the feature cache


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


# --------------------------------------------------------------------------- limited results


runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_a_limited_result_is_marked_and_never_a_submission(tmp_path):
    out = tmp_path / "quick.json"
    done = cli("evaluate", "--task", "digits-5", "--limit", "60", "--metrics", "clusterability", "--out", out, "-q")
    assert done.exit_code == 0, done.output
    doc = json.loads(out.read_text())
    assert all(s["canonical"] is False and s["limit"]["n"] == 60 for s in doc["task"]["splits"].values())
    assert doc["task"]["n_samples"] == 60 and any("never ranked" in note for note in doc["notes"])
    # Wherever its numbers are shown, it says it is a quick try: the results table and the figure's title.
    listed = cli("results", out)
    assert listed.exit_code == 0, listed.output
    assert "digits-5 (limited)" in listed.output and "--limit quick try" in listed.output
    svg = tmp_path / "quick.svg"
    from subclassbench.figures.drawing import write_result_figure
    from subclassbench.results.result import read_result

    write_result_figure(read_result(out), out)
    assert "quick try" in svg.read_text()
    # Hand it in as if it were the submission's result: validation refuses it, in one line.
    subs = tmp_path / "submissions"
    made = cli(
        "submit", "--name", "quick", "--model", "builtin:digits_cnn.digits5_coarse", "--task", "digits-5",
        "--metrics", "clusterability", "--submissions", subs, "--training-data", "digits-5 train split",
        "--license", "MIT", "--citation", "This test suite.", "--labels", "superclass", "--label-task", "digits-5",
        "--quiet",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    target = subs / "quick" / "results" / "digits-5.json"
    shutil.copy(out, target)
    shutil.copy(out.with_name("quick.samples.npz"), target.with_name("digits-5.samples.npz"))
    doc["samples"]["file"] = "digits-5.samples.npz"
    target.write_text(json.dumps(doc))
    checked = cli("validate", subs)
    assert checked.exit_code == 2
    assert "--limit subset" in checked.output


# --------------------------------------------------------------------------- scoring workers


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


def test_bad_score_workers_is_one_error_line():
    from typer.testing import CliRunner

    from subclassbench.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--score-workers", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    with pytest.raises(SubclassbenchError, match="--score-workers must be between 0"):
        evaluate(EvaluationRequest(score_workers=999, progress=False))


def test_weights_metadata_the_run_ignores_is_a_warning_and_a_note(tmp_path, capsys):
    """A weights file that says its inputs are normalised otherwise: the run warns on stderr and the result says so."""
    from safetensors.torch import load_file, save_file

    packaged = Path(__file__).parents[2] / "subclassbench/weights/digits_cnn.digits5_coarse.safetensors"
    path = tmp_path / "digits.safetensors"
    save_file(load_file(str(packaged)), str(path), metadata={"arch": "builtin:digits_cnn", "mean": "0.25"})
    request = EvaluationRequest(
        model="builtin:digits_cnn", weights=str(path), metrics=["clusterability"], bootstrap=0, cache="off",
        progress=False,
    )  # fmt: skip
    warning = "the weights file says mean 0.25, but this run uses 0; pass --preprocess mean=0.25 if the file is right"
    assert f"warning: {warning}" in evaluate(request)["notes"]
    assert f"warning: {warning}" in capsys.readouterr().err
    request.preprocess = {"mean": 0.25}
    result = evaluate(request)
    assert not any(note.startswith("warning:") for note in result["notes"])
    assert result["encoder"]["preprocessing_overrides"] == {"mean": [0.25]}
