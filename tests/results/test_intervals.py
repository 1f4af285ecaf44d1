"""Bootstrap intervals from the per-sample outputs (subclassbench.results.intervals): an earlier method's
result brought to what evaluate writes, what cannot be recomputed refused, methods never paired, no
intervals without the bootstrap, an edited interval refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.leaderboard.board import _pairing
from subclassbench.results import intervals
from subclassbench.results.result import read_result
from subclassbench.uncertainty.bootstrap import PREVIOUS_METHODS, mean_replicates, stratified_counts, with_estimate
from tests.results.conftest import _earlier_method, _refused, loaded

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_an_earlier_methods_result_reads_and_intervals_brings_it_to_what_evaluate_writes(copy, monkeypatch):
    fresh = {p.name: p.read_bytes() for p in copy.parent.iterdir()}
    fresh_ci = read_result(copy).summary["ci95"]
    _earlier_method(copy, monkeypatch)
    old = read_result(copy)  # still a valid result: its intervals follow from its replicates
    assert old["uncertainty"]["method"] == PREVIOUS_METHODS[0] and not intervals.current(old)
    assert old.summary["ci95"]["committed_ami"] != fresh_ci["committed_ami"]
    assert old.summary["ci95"]["committed_within_superclass_acc"] == fresh_ci["committed_within_superclass_acc"]
    checked = cli("intervals", "--check", copy.parent)
    assert checked.exit_code == 1 and f"{copy}: outdated" in checked.output
    assert cli("intervals", copy).exit_code == 0
    assert {p.name: p.read_bytes() for p in copy.parent.iterdir()} == fresh  # byte for byte what evaluate wrote
    again = cli("intervals", copy)
    assert again.exit_code == 0 and f"{copy}: current" in again.output


def test_intervals_command_refuses_what_it_cannot_recompute(copy, tmp_path):
    no_bootstrap = tmp_path / "none" / "r.json"
    assert (
        cli("evaluate", "--out", no_bootstrap, "--quiet", "--metrics", "clusterability", "--bootstrap", "0").exit_code
        == 0
    )
    for args, fragment in (
        ((tmp_path / "missing.json",), "does not exist"),
        ((no_bootstrap,), "current"),  # nothing to recompute, nothing written
    ):
        out = cli("intervals", *args)
        assert fragment in out.output, out.output
    (copy.parent / "digits.samples.npz").unlink()
    out = cli("intervals", copy)
    assert out.exit_code == 2 and out.output.startswith("error:") and out.output.count("\n") == 1


def test_results_of_different_methods_are_never_paired(copy, monkeypatch, tmp_path):
    current = read_result(copy)
    files = list(copy.parent.iterdir())
    other = tmp_path / "old" / copy.name
    other.parent.mkdir()
    for path in files:
        shutil.copy(path, other.parent / path.name)
    _earlier_method(other, monkeypatch)
    assert _pairing(current) is not None and _pairing(current) != _pairing(read_result(other))


def test_no_intervals_with_bootstrap_zero(tmp_path):
    out = tmp_path / "r.json"
    assert cli("evaluate", "--out", out, "--quiet", "--metrics", "clusterability", "--bootstrap", "0").exit_code == 0
    result = read_result(out)
    assert "ci95" not in result.summary and "uncertainty" not in result.doc and result.samples is not None


def test_an_edited_interval_is_refused(copy):
    doc = json.loads(copy.read_text())
    doc["summary"]["ci95"]["committed_ami"] = [0.0, 1.0]
    copy.write_text(json.dumps(doc))
    _refused(copy, "summary.ci95.committed_ami")


# --------------------------------------------------------------------------- replicates, recomputed another way


def _settings(doc: dict) -> tuple[int, int]:
    return int(doc["uncertainty"]["resamples"]), int(doc["uncertainty"]["seed"])


def test_every_headline_of_both_families_has_its_replicates(shifted, ood):
    doc, samples = loaded(shifted)
    assert set(samples.replicates) >= {
        "committed_ami", "committed_reconstruction_acc", "committed_head_reconstruction_acc", "best_ami",
        "head_superclass_acc", "last_ami", "last_reconstruction_acc", "subpop_shift_retained", "subpop_refit_retained",
    }  # fmt: skip
    assert set(samples.layer_replicates) == {
        "ami", "within_superclass_acc", "reconstruction_acc", "head_reconstruction_acc", "id_acc"
    }  # fmt: skip
    assert set(doc["summary"]["ci95"]) == set(samples.replicates)
    names = samples.layers
    layer = samples.layer_replicates
    # The best and last layer's headline replicates are that layer's own (stored as float32).
    best = names.index(doc["summary"]["best_layer"])
    np.testing.assert_allclose(samples.replicates["best_ami"], layer["ami"][best], atol=1e-6)
    np.testing.assert_allclose(samples.replicates["last_ami"], layer["ami"][-1], atol=1e-6)
    doc, samples = loaded(ood)
    assert {"ood_retained", "ood_retained_mean_curve"} <= set(samples.replicates)
    assert "ood_mean_acc" in samples.layer_replicates


def test_the_ood_headline_follows_from_the_layers_ood_replicates(ood):
    """Harun et al.'s rule applied to each replicate of the per-layer OOD curve gives the headline's replicate."""
    doc, samples = loaded(ood)
    distinct = [not layer["transfer"]["same_as_next"] for layer in doc["layers"]]
    curves = samples.layer_replicates["ood_mean_acc"].astype(np.float64)[distinct]  # distinct layers × (1 + B)
    expected = []
    for acc in curves.T:
        best, last = int(np.argmax(acc)), len(acc) - 1
        expected.append(100 * acc[last] / acc[best] if best < last and acc[best] > acc[last] else 100.0)
    np.testing.assert_allclose(samples.replicates["ood_retained"], expected, rtol=1e-5)
    # One OOD set: the mean of the sets' own % retained is the mean curve's.
    np.testing.assert_array_equal(samples.replicates["ood_retained"], samples.replicates["ood_retained_mean_curve"])


def test_each_probe_resamples_its_own_named_stream(shifted, ood):
    """docs/uncertainty.md: a probe's test set is resampled on its own stream, 'probe.<name>', within its classes."""
    for path, probe, key in ((shifted, "id", "id_acc"), (ood, "ood/digits-ood5", "ood_mean_acc")):
        doc, samples = loaded(path)
        resamples, seed = _settings(doc)
        counts = with_estimate(stratified_counts(samples.probes[probe].truth, resamples, seed, f"probe.{probe}"))
        expected = mean_replicates(counts, samples.probe_correct(probe).T).T  # layers × (1 + B)
        np.testing.assert_allclose(samples.layer_replicates[key], expected, atol=1e-6)  # as evaluate stored them
        found = intervals.compute(samples, doc["layers"], doc["summary"], resamples=resamples, seed=seed)
        np.testing.assert_allclose(found.layer_replicates[key], expected, atol=1e-6)  # and as computed again


def test_a_v2_result_reads_percent_retained_on_the_mean_curve(ood):
    """Protocol v1/v2's % retained is the mean OOD curve's; with one OOD set it equals v3's mean of the sets'."""
    doc, samples = loaded(ood)
    resamples, seed = _settings(doc)
    v2 = json.loads(json.dumps(doc["summary"]))
    del v2["transfer"]["ood_retained_mean_curve"]
    found = intervals.compute(samples, doc["layers"], v2, resamples=resamples, seed=seed)
    assert "ood_retained_mean_curve" not in found.replicates
    np.testing.assert_array_equal(found.replicates["ood_retained"], samples.replicates["ood_retained_mean_curve"])


def test_a_v2_committed_layer_takes_that_layers_replicates(shifted):
    """Protocol v1/v2 committed one layer (chosen on a validation split): its headline replicates are that
    layer's, its superclass accuracy that layer's probe's, its Ward AMI that layer's Ward partition's."""
    doc, samples = loaded(shifted)
    resamples, seed = _settings(doc)
    layer = samples.ward_layers[0]
    i = samples.layers.index(layer)
    summary = {"committed_layer": layer, "selection": {"split": "val", "per_layer_ami": [0.0] * len(samples.layers)}}
    found = intervals.compute(samples, doc["layers"], summary, resamples=resamples, seed=seed)
    reps, scores = found.replicates, doc["layers"][i]["clusterability"]
    np.testing.assert_allclose(reps["committed_ami"], found.layer_replicates["ami"][i], atol=1e-6)
    np.testing.assert_allclose(reps["committed_within_superclass_acc"],
                               found.layer_replicates["within_superclass_acc"][i], atol=1e-6)  # fmt: skip
    assert reps["committed_reconstruction_acc"][0] == pytest.approx(scores["reconstruction_acc"], abs=1e-12)
    assert samples.superclass_pred is not None
    right = np.mean(samples.superclass_pred[i] == samples.superclass)
    assert reps["committed_superclass_acc"][0] == pytest.approx(right, abs=1e-12)
    assert reps["committed_ward_ami"][0] == pytest.approx(scores["ward"]["ami"], abs=1e-9)
    assert len(reps["committed_ward_ami"]) == resamples + 1 and np.ptp(reps["committed_ward_ami"]) > 0
