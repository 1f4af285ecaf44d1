"""Confidence intervals: the bootstrap's arithmetic, its calibration, the per-sample file, hostile edits of it,
training seeds and tie-aware ranks."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.leaderboard.board import _pairing, build, collect
from subclassbench.metrics.layers import tunnel_summary
from subclassbench.results import intervals
from subclassbench.results.result import read_result
from subclassbench.schemas import load_schema
from subclassbench.uncertainty import bootstrap
from subclassbench.uncertainty.bootstrap import (
    METHOD,
    PREVIOUS_METHODS,
    ami_from_tables,
    cell_tables,
    cluster_replicates,
    combine_seeds,
    interval,
    mean_replicates,
    nmi_from_tables,
    retained_replicates,
    stratified_counts,
    with_estimate,
)
from subclassbench.uncertainty.calibration import NEAR_CHANCE, Hierarchy, measure
from subclassbench.uncertainty.ranking import Contender, tie_aware_ranks
from tests.conftest import digits_mlp_weights

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- arithmetic


def test_ami_from_weighted_tables_equals_scikit_learn_on_the_expanded_labels():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        truth, pred = rng.integers(0, int(rng.integers(1, 4)), n), rng.integers(0, int(rng.integers(1, 5)), n)
        counts = rng.integers(0, 3, (3, n))
        tables = cell_tables(counts, truth, pred)
        got = ami_from_tables(tables)
        for b in range(3):
            expected = adjusted_mutual_info_score(np.repeat(truth, counts[b]), np.repeat(pred, counts[b]))
            assert got[b] == pytest.approx(expected, abs=1e-12)


def test_nmi_from_tables_equals_scikit_learn():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        truth, pred = rng.integers(0, int(rng.integers(1, 4)), n), rng.integers(0, int(rng.integers(1, 5)), n)
        got = nmi_from_tables(cell_tables(np.ones((1, n), dtype=np.int64), truth, pred))[0]
        assert got == pytest.approx(normalized_mutual_info_score(truth, pred), abs=1e-12)


def test_ami_replicates_are_centred_on_the_samples_nmi_and_the_estimate_is_untouched():
    """Near chance, resampled AMIs sit above the estimate by the chance correction (NMI − AMI); centred, they
    straddle it, and the interval holds the estimate instead of collapsing beside it."""
    rng = np.random.default_rng(2)
    superclass = np.repeat(np.arange(4), 200)
    subclass = rng.integers(0, 4, 800)
    clusters = np.where(rng.random(800) < 0.2, subclass, rng.integers(0, 4, 800))
    counts = with_estimate(stratified_counts(superclass, 400, 0, "evaluation"))
    got = cluster_replicates(counts, superclass, subclass, clusters)
    amis, offsets = [], []
    for s in range(4):
        rows = superclass == s
        amis.append(adjusted_mutual_info_score(subclass[rows], clusters[rows]))
        offsets.append(normalized_mutual_info_score(subclass[rows], clusters[rows]) - amis[-1])
    assert got.ami[0] == pytest.approx(np.mean(amis), abs=1e-12)  # the estimate, as a result reports it
    raw = np.mean(
        [
            ami_from_tables(
                cell_tables(counts[:, superclass == s], subclass[superclass == s], clusters[superclass == s])
            )
            for s in range(4)
        ],
        axis=0,
    )
    assert got.ami[1:] == pytest.approx(raw[1:] - np.mean(offsets), abs=1e-12)
    assert np.mean(raw[1:] > raw[0]) > 0.95  # uncentred: nearly every replicate above the estimate
    assert 0.3 < np.mean(got.ami[1:] > got.ami[0]) < 0.7
    low, high = interval(got.ami)
    assert low < got.ami[0] < high
    assert high - low > 2 * np.std(got.ami[1:])


def test_counts_keep_every_stratum_size_and_are_seeded_per_sample_set():
    strata = np.repeat([0, 1, 2], [5, 9, 20])
    counts = stratified_counts(strata, 50, seed=0, name="evaluation")
    for s in range(3):
        assert (counts[:, strata == s].sum(axis=1) == (strata == s).sum()).all()
    assert (counts == stratified_counts(strata, 50, seed=0, name="evaluation")).all()
    assert not (counts == stratified_counts(strata, 50, seed=0, name="probe.id")).all()
    assert not (counts == stratified_counts(strata, 50, seed=1, name="evaluation")).all()


def test_first_value_is_the_estimate_and_replicates_are_weighted_means():
    rng = np.random.default_rng(1)
    correct = rng.random(30) < 0.7
    counts = with_estimate(stratified_counts(np.zeros(30, int), 20, 0, "evaluation"))
    values = mean_replicates(counts, correct)
    assert values[0] == pytest.approx(correct.mean())
    assert values[5] == pytest.approx(np.repeat(correct, counts[5]).mean())
    curve = rng.random((30, 4)) < np.array([0.5, 0.9, 0.8, 0.6])
    retained = retained_replicates(mean_replicates(counts, curve), [True] * 4)
    assert retained[0] == pytest.approx(tunnel_summary(list("abcd"), [0] * 4, curve.mean(0).tolist())["ood_retained"])


def test_bias_correction_follows_the_replicates_offset():
    rng = np.random.default_rng(2)
    half = rng.normal(0.0, 1.0, 2000)
    replicates = np.r_[half, -half]  # symmetric about the estimate: z0 = 0, BC is the percentile interval
    centred = interval(np.r_[0.0, replicates])
    assert centred == pytest.approx(np.quantile(replicates, [0.025, 0.975]).tolist(), abs=1e-9)
    shifted = interval(np.r_[0.0, replicates + 0.5])  # replicates biased upward: the interval moves down
    assert shifted[0] < 0.5 + centred[0] and shifted[1] < 0.5 + centred[1]
    assert interval(np.r_[1.0, np.ones(100)]) == [1.0, 1.0]  # no variation, no width


def test_nominal_95_percent_intervals_cover_known_population_values():
    """The suite's small calibration (the full one: benchmarks/bench_bootstrap.py, docs/uncertainty.md)."""
    for coverage in measure(Hierarchy(images_per_superclass=100), draws=400, resamples=200):
        assert 0.92 <= coverage.rate <= 0.98, (coverage.metric, coverage.rate)


def test_ami_intervals_cover_near_chance():
    """Where untrained and weak encoders score (population AMI 0.04): the uncentred intervals covered 0-15%."""
    (ami, *_) = measure(NEAR_CHANCE, draws=200, resamples=200)
    assert NEAR_CHANCE.population_ami() == pytest.approx(0.039, abs=0.001)
    assert 0.92 <= ami.rate <= 0.99, ami.rate


def test_seed_combination_widens_the_interval_by_the_seed_spread():
    rng = np.random.default_rng(3)
    image_noise = rng.normal(0, 0.01, 1000)
    one_seed = np.r_[0.5, 0.5 + image_noise]
    assert (combine_seeds(one_seed[None, :]) == one_seed).all()
    spread = np.stack([np.r_[m, m + image_noise] for m in (0.45, 0.5, 0.55)])  # the same images, other weights
    combined = combine_seeds(spread)
    assert combined[0] == pytest.approx(0.5)
    low, high = interval(combined)
    one_low, one_high = interval(one_seed)
    assert high - low > 2 * (one_high - one_low)  # the seeds spread 0.05 each side; the images only ±0.02


def test_ranks_are_shared_by_rows_a_paired_bootstrap_cannot_separate():
    rng = np.random.default_rng(4)
    shared = rng.normal(0, 0.02, 1000)  # image-level noise the rows share (paired)
    a = Contender(0.80, np.r_[0.80, 0.80 + shared + rng.normal(0, 0.004, 1000)], "same")
    b = Contender(0.799, np.r_[0.799, 0.799 + shared + rng.normal(0, 0.004, 1000)], "same")
    c = Contender(0.70, np.r_[0.70, 0.70 + shared + rng.normal(0, 0.004, 1000)], "same")
    assert tie_aware_ranks([a, b, c]) == [1, 1, 3]
    # Unpaired rows (other images) fall back to point values: no shared rank without evidence.
    b_elsewhere = Contender(0.799, b.replicates, "other")
    assert tie_aware_ranks([a, b_elsewhere, c]) == [1, 2, 3]
    # Pairing matters: the same two rows with independent noise of that size would not separate.
    d = Contender(0.78, np.r_[0.78, 0.78 + shared + rng.normal(0, 0.004, 1000)], "same")
    assert tie_aware_ranks([a, d]) == [1, 2]


# --------------------------------------------------------------------------- results and their per-sample file


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ci") / "digits.json"
    result = cli("evaluate", "--out", out, "--quiet", "--metrics", "clusterability")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(evaluated: Path, tmp_path: Path) -> Path:
    for path in evaluated.parent.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / evaluated.name


def test_result_carries_intervals_and_a_per_sample_file_that_recomputes_them(evaluated):
    result = read_result(evaluated)
    summary, samples = result.summary, result.samples
    assert samples is not None and (evaluated.parent / "digits.samples.npz").is_file()
    low, high = summary["ci95"]["committed_ami"]
    assert low <= summary["committed_ami"] <= high and high - low > 0
    assert result["uncertainty"]["resamples"] == 1000 and result["uncertainty"]["method"] == METHOD
    # Headline numbers follow from the per-image assignments alone, without features.
    i = result.layer_names.index(summary["committed_layer"])
    per_superclass = [
        adjusted_mutual_info_score(
            samples.subclass[samples.superclass == s], samples.kmeans[i][samples.superclass == s]
        )
        for s in np.unique(samples.superclass)
    ]
    assert np.mean(per_superclass) == pytest.approx(summary["committed_ami"], abs=1e-12)
    correct = samples.reconstruction_correct()
    assert correct is not None and correct[i].mean() == pytest.approx(summary["committed_reconstruction_acc"])
    layer_ci = result.layers[i]["ci95"]["ami"]
    assert layer_ci == pytest.approx(summary["ci95"]["committed_ami"], abs=1e-6)
    assert cluster_replicates(
        np.ones((1, len(samples.superclass)), int), samples.superclass, samples.subclass, samples.kmeans[i]
    ).ami[0] == pytest.approx(summary["committed_ami"])


def test_the_per_sample_file_is_byte_identical_across_runs(evaluated, tmp_path):
    again = tmp_path / "digits.json"
    assert cli("evaluate", "--out", again, "--quiet", "--metrics", "clusterability").exit_code == 0
    first = (evaluated.parent / "digits.samples.npz").read_bytes()
    assert (tmp_path / "digits.samples.npz").read_bytes() == first


def _earlier_method(result_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewrite a result as the first bootstrap method wrote it: AMI replicates left uncentred."""
    with monkeypatch.context() as patched:
        patched.setattr(bootstrap, "nmi_from_tables", bootstrap.ami_from_tables)  # an offset of zero
        patched.setitem(bootstrap.BOOTSTRAP, "method", PREVIOUS_METHODS[0])
        patched.setattr(intervals, "METHOD", "none yet")  # so that refresh() runs
        intervals.refresh(read_result(result_path)).write(result_path)


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


def test_the_schema_names_the_current_and_every_earlier_method():
    schema = load_schema("result")
    assert schema["properties"]["uncertainty"]["properties"]["method"]["enum"] == [METHOD, *PREVIOUS_METHODS]


def test_no_intervals_with_bootstrap_zero(tmp_path):
    out = tmp_path / "r.json"
    assert cli("evaluate", "--out", out, "--quiet", "--metrics", "clusterability", "--bootstrap", "0").exit_code == 0
    result = read_result(out)
    assert "ci95" not in result.summary and "uncertainty" not in result.doc and result.samples is not None


def _refused(path: Path, fragment: str) -> None:
    with pytest.raises(SubclassbenchError) as caught:
        read_result(path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_per_sample_file_is_refused(copy):
    (copy.parent / "digits.samples.npz").unlink()
    _refused(copy, "cannot read the per-sample file")


def test_an_edited_per_sample_file_is_refused(copy):
    sidecar = copy.parent / "digits.samples.npz"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    _refused(copy, "sha256 differs")


def test_a_renamed_result_without_its_per_sample_file_is_refused(copy):
    moved = copy.parent / "other.json"
    copy.rename(moved)
    _refused(moved, "not 'other.samples.npz' beside it")


def test_a_per_sample_path_out_of_the_folder_is_refused(copy):
    doc = json.loads(copy.read_text())
    doc["samples"]["file"] = "../../etc/digits.samples.npz"
    copy.write_text(json.dumps(doc))
    _refused(copy, "does not match result schema")


def test_an_edited_interval_is_refused(copy):
    doc = json.loads(copy.read_text())
    doc["summary"]["ci95"]["committed_ami"] = [0.0, 1.0]
    copy.write_text(json.dumps(doc))
    _refused(copy, "summary.ci95.committed_ami")


def test_intervals_without_a_per_sample_record_are_refused(copy):
    doc = json.loads(copy.read_text())
    del doc["samples"]
    copy.write_text(json.dumps(doc))
    _refused(copy, "no per-sample file")


def _rewrite_sidecar(copy: Path, members: dict[str, bytes]) -> None:
    """Replace the per-sample file and forge the JSON's sha256 to match, as a hostile editor could."""
    import hashlib

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    (copy.parent / "digits.samples.npz").write_bytes(buffer.getvalue())
    doc = json.loads(copy.read_text())
    doc["samples"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    copy.write_text(json.dumps(doc))


def test_a_pickle_in_the_per_sample_file_is_never_loaded(copy, tmp_path):
    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    np.save(payload, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # an object array: pickle inside
    _rewrite_sidecar(copy, {"superclass.npy": payload.getvalue()})
    _refused(copy, "not a readable per-sample file")
    assert not marker.exists()


def test_a_per_sample_file_with_wrong_shapes_or_members_is_refused(copy):
    with np.load(copy.parent / "digits.samples.npz") as data:
        members = {f"{k}.npy": _npy(data[k]) for k in data.files}
    members["kmeans.npy"] = _npy(np.zeros((2, 3), np.int8))
    _rewrite_sidecar(copy, members)
    _refused(copy, "array 'kmeans' has shape")
    members.pop("kmeans.npy")
    members["../evil.npy"] = _npy(np.zeros(1))
    _rewrite_sidecar(copy, members)
    _refused(copy, "unexpected member")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --------------------------------------------------------------------------- seeds and the leaderboard


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
