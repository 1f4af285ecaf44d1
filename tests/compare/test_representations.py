"""`subclassbench compare` (CKA / GRI between layers of two encoders) and `subclassbench agreement`
(subclassbench.compare.representations), train-split logs and runs written before them included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.compare.representations import agreement_over_runs, compare
from subclassbench.errors import SubclassbenchError
from subclassbench.training.trainer import load_correctness, load_train_correctness

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_comparing_an_encoder_with_itself_gives_ones_on_the_diagonal():
    doc = compare("builtin:digits_cnn.digits5_coarse", "builtin:digits_cnn.digits5_coarse", "digits-5")
    cka, gri = np.asarray(doc["cka"]), np.asarray(doc["gri"])
    assert cka.shape == gri.shape == (4, 4)
    np.testing.assert_allclose(np.diag(cka), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.diag(gri), 1.0, atol=1e-9)
    np.testing.assert_allclose(cka, cka.T, atol=1e-9)
    np.testing.assert_allclose(gri, gri.T, atol=1e-9)
    assert all(0.0 <= v <= 1.0 for v in doc["gri_to_labels"]["a"])
    assert doc["gri_to_labels"]["a"] == doc["gri_to_labels"]["b"]
    concepts = doc["concepts"]
    assert len(concepts["universal"]) == doc["memberships"]["k"]  # identical memberships: every concept shared
    assert all(c["distance"] == pytest.approx(0.0, abs=1e-12) for c in concepts["universal"])


def test_compare_command_writes_json_and_heatmaps_deterministically(tmp_path):
    args = ["compare", "--model", "builtin:digits_cnn.digits5_coarse", "--model", "builtin:digits_mlp"]
    args += ["--task", "digits-5", "--max-samples", 300, "--quiet"]
    first = cli(*args, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    second = cli(*args, "--out", tmp_path / "b")
    assert second.exit_code == 0
    assert (tmp_path / "a" / "compare.json").read_bytes() == (tmp_path / "b" / "compare.json").read_bytes()
    doc = json.loads((tmp_path / "a" / "compare.json").read_text())
    assert doc["samples"] == {"n": 300, "of": 540, "max_samples": 300, "seed": 0}
    assert np.asarray(doc["gri"]).shape == (len(doc["a"]["layers"]), len(doc["b"]["layers"]))
    for name in ("cka", "gri"):
        assert (tmp_path / "a" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        for suffix in ("png", "svg", "pdf"):  # the figures are as deterministic as the JSON
            assert (tmp_path / "a" / f"{name}.{suffix}").read_bytes() == (
                tmp_path / "b" / f"{name}.{suffix}"
            ).read_bytes()
    share = doc["adjacent_layer_check"]["a"]
    assert share is None or 0.0 <= share <= 1.0


def test_compare_bad_input_is_one_line(tmp_path):
    bad_pair = cli("compare", "--model", "builtin:digits_mlp", "--pair", "fc1,nope", "--out", tmp_path, "--quiet")
    assert bad_pair.exit_code == 2 and "--pair fc1,nope" in bad_pair.output
    three = cli("compare", "--model", "a:x", "--model", "b:y", "--model", "c:z")
    assert three.exit_code == 2 and "one or two --model" in three.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        run = root / f"seed{seed}"
        result = cli("train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", 3, "--seed", seed, "--out", run)
        assert result.exit_code == 0, result.output
        out.append(run)
    return out


def test_agreement_over_training_runs(runs, tmp_path):
    result = cli("agreement", *runs, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "agreement.json").read_text())
    assert doc["epochs"] == 3 and doc["n_samples"] == 540 and doc["seeds"] == [0, 1]
    assert all(0.0 <= a <= 1.0 for a in doc["agreement"])
    assert all(0.0 <= s for s in doc["accuracy_std"])
    assert (tmp_path / "agreement.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "agreement.svg").is_file() and (tmp_path / "agreement.pdf").is_file()
    same = cli("agreement", runs[0], runs[0], "--out", tmp_path / "same")
    assert same.exit_code == 0
    same_doc = json.loads((tmp_path / "same" / "agreement.json").read_text())
    # A run agrees with itself on every sample it gets right: agreement 1 = the upper bound, and the share of
    # samples both copies get right is its accuracy.
    assert same_doc["agreement"] == same_doc["agreement_upper_bound"] == [1.0] * 3
    assert same_doc["all_right_share"] == same_doc["accuracy_mean"]
    assert same_doc["train"]["all_right_share"] == same_doc["train"]["accuracy_mean"]


def test_agreement_bad_input(runs, tmp_path):
    not_a_run = cli("agreement", tmp_path, "--out", tmp_path / "x")
    assert not_a_run.exit_code == 2 and "correctness.npz" in not_a_run.output
    other = tmp_path / "other"
    result = cli("train", "--task", "synthetic-hier", "--arch", "mlp", "--epochs", 1, "--out", other)
    assert result.exit_code == 0, result.output
    mixed = cli("agreement", runs[0], other, "--out", tmp_path / "y")
    assert mixed.exit_code == 2 and "other test samples" in mixed.output


def test_one_model_with_its_weights_is_compared_with_itself(runs, tmp_path):
    out = cli(
        "compare",
        "--model",
        "builtin:digits_mlp",
        "--weights",
        runs[0],
        "--max-samples",
        200,
        "--quiet",
        "--out",
        tmp_path,
    )
    assert out.exit_code == 0, out.output
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["a"]["weights"] == doc["b"]["weights"] and doc["a"]["weights"] is not None
    np.testing.assert_allclose(np.diag(np.asarray(doc["cka"])), 1.0, atol=1e-9)


def test_compare_reads_features_an_evaluation_cached(tmp_path, monkeypatch):
    """evaluate fills the cache with the whole split's features; compare on the whole split then runs no
    forward pass, and gives the document it gives without the cache."""
    from subclassbench.features import extraction as features

    cache = tmp_path / "cache"
    done = cli("evaluate", "--task", "digits-5", "--metrics", "clusterability", "--cache-dir", cache,
               "--out", tmp_path / "r.json", "--bootstrap", 0, "-q")  # fmt: skip
    assert done.exit_code == 0, done.output
    args = ["compare", "--model", "builtin:digits_cnn.digits5_coarse", "--task", "digits-5", "--max-samples", 0, "-q"]
    before = features.FORWARD_BATCHES
    cached = cli(*args, "--cache-dir", cache, "--out", tmp_path / "cached")
    assert cached.exit_code == 0, cached.output
    assert features.FORWARD_BATCHES == before  # every layer came from the cache
    fresh = cli(*args, "--no-cache", "--out", tmp_path / "fresh")
    assert fresh.exit_code == 0 and features.FORWARD_BATCHES > before
    assert (tmp_path / "cached" / "compare.json").read_bytes() == (tmp_path / "fresh" / "compare.json").read_bytes()


# --------------------------------------------------------------------------- agreement over runs with train-split logs


def test_agreement_reports_test_and_train(two_runs, tmp_path):
    doc = agreement_over_runs(two_runs)
    assert doc["agreement_version"] == "3" and doc["train_not_recorded"] == []
    for part in (doc, doc["train"]):
        agr, low, high = (np.asarray(part[k]) for k in ("agreement", "agreement_lower_bound", "agreement_upper_bound"))
        assert agr.shape == (2,) and np.all(low <= agr) and np.all(agr <= high)
        assert np.all(np.asarray(part["all_right_share"]) <= agr) and len(part["agreement_if_independent"]) == 2
        assert all(s >= 0 for s in part["accuracy_std"])
    assert doc["train"]["n_samples"] > doc["n_samples"] == 540
    result = runner.invoke(app, ["agreement", *map(str, two_runs), "--out", str(tmp_path / "agr")])
    assert result.exit_code == 0, result.output
    assert "train: agreement" in result.output and "lower bound" in result.output and "independent" in result.output
    assert json.loads((tmp_path / "agr" / "agreement.json").read_text())["train"] == doc["train"]


def _strip_train_log(run: Path, dest: Path) -> Path:
    """A copy of ``run`` whose correctness.npz looks like one written before protocol v2."""
    dest.mkdir()
    (dest / "card.json").write_bytes((run / "card.json").read_bytes())
    with np.load(run / "correctness.npz") as data:
        kept = {k: data[k] for k in data.files if not k.startswith("train_")}
    np.savez_compressed(dest / "correctness.npz", **kept)
    return dest


def test_a_run_without_train_correctness_is_still_readable(two_runs, tmp_path):
    old = _strip_train_log(two_runs[0], tmp_path / "old")
    assert load_train_correctness(old) is None
    np.testing.assert_array_equal(load_correctness(old), load_correctness(two_runs[0]))
    doc = agreement_over_runs([old, two_runs[1]])
    assert doc["train"] is None and doc["train_not_recorded"] == [str(old)]
    assert doc["agreement"] == agreement_over_runs(two_runs)["agreement"]
    result = runner.invoke(app, ["agreement", str(old), str(two_runs[1]), "--out", str(tmp_path / "agr")])
    assert result.exit_code == 0, result.output
    assert "not reported" in result.output and (tmp_path / "agr" / "agreement.png").is_file()


def test_train_logs_of_different_train_splits_are_refused(two_runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "card.json").write_bytes((two_runs[0] / "card.json").read_bytes())
    with np.load(two_runs[0] / "correctness.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["train_ids"] = np.array([f"x{i}" for i in range(len(arrays["train_ids"]))])
    np.savez_compressed(other / "correctness.npz", **arrays)
    with pytest.raises(SubclassbenchError, match="other samples"):
        agreement_over_runs([two_runs[1], other])
