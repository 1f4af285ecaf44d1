"""Agreement of training runs (Pliushch et al., ECCV 2022; agreement v3): definition, bounds, train logs, old runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.compare.representations import agreement_over_runs
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.metrics.similarity import (
    agreement,
    agreement_if_independent,
    agreement_lower_bound,
    agreement_upper_bound,
    all_right_share,
    sample_agreement,
)
from subclassbench.tasks.task import load_task
from subclassbench.training.trainer import Recipe, load_correctness, load_train_correctness, targets, train

FAST = Recipe(epochs=2, batch_size=128)
runner = CliRunner()


# --------------------------------------------------------------------------- the metric


def _authors_agreement(correct: np.ndarray) -> np.ndarray:
    """Pliushch et al.'s computation as their code states it (``calc_agreement``): Σ Π over Σ max, 0/1 → 0."""
    arr = np.asarray(correct, dtype=np.int64)
    intersection = np.prod(arr, axis=0).sum(axis=1)
    union = np.max(arr, axis=0).sum(axis=1)
    return intersection / np.where(union == 0, 1, union)


def test_a_sample_no_network_gets_right_is_left_out():
    # Three networks, one epoch, three samples: x0 right everywhere, x1 right for one network, x2 wrong everywhere.
    correct = np.array([[[1, 1, 0]], [[1, 0, 0]], [[1, 0, 0]]], dtype=bool)
    np.testing.assert_array_equal(sample_agreement(correct), [[1.0, 1 / 3, 0.0]])
    np.testing.assert_array_equal(agreement(correct), [0.5])  # x0 of {x0, x1}; x2 counts in neither
    np.testing.assert_array_equal(all_right_share(correct), [1 / 3])  # x0 of all three
    # Nobody right anywhere: agreement 0 (the authors' code divides by 1 there); everybody right everywhere: 1.
    np.testing.assert_array_equal(agreement(np.zeros((3, 2, 10), dtype=bool)), [0.0, 0.0])
    np.testing.assert_array_equal(agreement(np.ones((3, 2, 10), dtype=bool)), [1.0, 1.0])


def test_the_papers_worked_example():
    # Three models, three images, three epochs with agreement 0, 1/2, 2/3: the values of the worked example in
    # the authors' README (the correctness pattern here is ours).
    correct = np.array(
        [
            [[1, 0, 0], [1, 1, 0], [1, 1, 1]],
            [[0, 1, 0], [1, 1, 0], [1, 1, 0]],
            [[0, 0, 0], [1, 0, 0], [1, 1, 0]],
        ],
        dtype=bool,
    )
    np.testing.assert_allclose(agreement(correct), [0.0, 1 / 2, 2 / 3])


def test_hand_computed_three_networks():
    correct = np.array(
        [
            [[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]],
            [[1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1]],
            [[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 0]],
        ]
    )
    # Epoch 0: all right on x0, x5; some right on x0–x3, x5 → 2/5; of all six samples 2/6.
    #   errors 2/6 each → lower bound 1 − min(1, 1) = 0; accuracies 4/6 each → upper bound 1.
    # Epoch 1: all right on x0–x3, some right on all six → 4/6; errors 0, 1/6, 1/6 → lower bound 4/6 (disjoint
    #   misses); accuracies 1, 5/6, 5/6 → upper bound 5/6.
    np.testing.assert_allclose(agreement(correct), [2 / 5, 4 / 6])
    np.testing.assert_allclose(all_right_share(correct), [2 / 6, 4 / 6])
    np.testing.assert_allclose(agreement_lower_bound(correct), [0.0, 4 / 6])
    np.testing.assert_allclose(agreement_upper_bound(correct), [1.0, 5 / 6])
    # Independent networks at 2/3 each: (8/27) / (1 − 1/27) = 8/26.
    assert agreement_if_independent(correct)[0] == pytest.approx(8 / 26)
    np.testing.assert_allclose(sample_agreement(correct)[0], [1, 2 / 3, 2 / 3, 2 / 3, 0, 1])
    np.testing.assert_allclose(sample_agreement(correct)[1], [1, 1, 1, 1, 2 / 3, 2 / 3])


def test_single_network():
    correct = np.random.default_rng(3).random((1, 4, 50)) < 0.7
    np.testing.assert_array_equal(agreement(correct), [1.0, 1.0, 1.0, 1.0])  # its correct set against itself
    np.testing.assert_allclose(all_right_share(correct), correct[0].mean(axis=1))
    np.testing.assert_allclose(agreement_lower_bound(correct), correct[0].mean(axis=1))
    np.testing.assert_allclose(agreement_if_independent(correct), [1.0, 1.0, 1.0, 1.0], rtol=0, atol=1e-12)
    # Every accuracy k/200 of one network: a / (1 − (1 − a)) is 1 in exact arithmetic, not always in floating
    # point (0.1 gives 1.0000000000000002); the baseline never passes the upper bound.
    for k in range(1, 201):
        one = (np.arange(200) < k)[None, None, :]
        assert 1.0 - 1e-12 < agreement_if_independent(one)[0] <= 1.0


@pytest.mark.parametrize("seed", range(20))
def test_agreement_matches_the_authors_computation_and_stays_within_its_bounds(seed):
    rng = np.random.default_rng(seed)
    networks, epochs, samples = rng.integers(1, 6), rng.integers(1, 5), rng.integers(1, 200)
    # Accuracies spread from 0 to near 1, so both branches of min(Σ err, 1) and empty unions occur.
    rate = rng.random((networks, epochs, 1)) * rng.integers(0, 2, (1, epochs, 1))
    correct = rng.random((networks, epochs, samples)) < rate
    agr = agreement(correct)
    np.testing.assert_allclose(agr, _authors_agreement(correct), rtol=0, atol=1e-15)
    assert np.all(agr >= agreement_lower_bound(correct))
    assert np.all(agr <= agreement_upper_bound(correct))
    share = all_right_share(correct)
    assert np.all(share <= agr) and np.all(share >= agreement_lower_bound(correct))
    np.testing.assert_allclose(share, agr * correct.any(axis=0).mean(axis=1))
    baseline = agreement_if_independent(correct)
    assert np.all(baseline >= 0) and np.all(baseline <= agreement_upper_bound(correct))


def test_bounds_are_reached():
    # Disjoint mistakes: every sample is right for some network, so agreement = the share = the lower bound.
    correct = np.ones((3, 1, 9), dtype=bool)
    correct[0, 0, 0:2] = correct[1, 0, 2:4] = correct[2, 0, 4:5] = False
    assert agreement(correct)[0] == all_right_share(correct)[0] == agreement_lower_bound(correct)[0]
    assert agreement(correct)[0] == pytest.approx(4 / 9)
    # Nested correct sets: agreement = lowest / highest accuracy.
    nested = np.zeros((3, 1, 10), dtype=bool)
    nested[0, 0, :3], nested[1, 0, :6], nested[2, 0, :8] = True, True, True
    assert agreement(nested)[0] == agreement_upper_bound(nested)[0] == pytest.approx(3 / 8)


def test_independent_networks_agree_as_the_baseline_says():
    rng = np.random.default_rng(0)
    rate = np.array([0.9, 0.6, 0.3])[:, None, None]
    correct = rng.random((3, 1, 200_000)) < rate
    assert agreement(correct)[0] == pytest.approx(agreement_if_independent(correct)[0], abs=0.005)
    # Networks that share their mistakes agree far above it.
    shared = np.broadcast_to(correct[1:2], correct.shape)
    assert agreement(shared)[0] == 1.0 > agreement_if_independent(shared)[0] + 0.3


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 5), dtype=bool), "3-D"),
        (np.ones((2, 3, 0), dtype=bool), "at least one sample"),
        (np.full((2, 3, 4), 0.5), "0/1"),
    ],
)
def test_bad_correctness_arrays(bad, match):
    for function in (
        agreement,
        all_right_share,
        agreement_lower_bound,
        agreement_upper_bound,
        agreement_if_independent,
        sample_agreement,
    ):
        with pytest.raises(ValueError, match=match):
            function(bad)


# --------------------------------------------------------------------------- train-split logs


@pytest.fixture(scope="module")
def digits():
    return load_task("digits-5")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, digits) -> list[Path]:
    root = tmp_path_factory.mktemp("v2runs")
    out = []
    for seed in (0, 1):
        run = root / f"mlp-s{seed}"
        train(digits, "digits_mlp", "superclass", run, Recipe(epochs=2, batch_size=128, seed=seed), progress=False)
        out.append(run)
    return out


def test_train_correctness_round_trips(two_runs, digits):
    run = two_runs[1]
    card = json.loads((run / "card.json").read_text())
    split = digits.load_split("train", primary=False)
    log = load_train_correctness(run)
    assert log is not None and log.dtype == bool and log.shape == (2, len(split))
    assert [h["train_eval_acc"] for h in card["history"]] == [round(float(e.mean()), 6) for e in log]
    with np.load(run / "correctness.npz") as data:
        assert list(data["train_ids"]) == split.images.ids
        assert data["train_packed"].shape == (2, -(-len(split) // 8))
        np.testing.assert_array_equal(data["train_labels"], targets(split, "superclass"))
    # The last epoch's log is what the saved weights predict on the train split in eval mode.
    encoder = load_encoder("builtin:digits_mlp", weights=run, sample_shape=split.images.sample_shape, num_classes=5)
    encoder.model.eval()
    with torch.inference_mode():
        pred = encoder.model(encoder.preprocessing(split.images.load(np.arange(len(split))))).argmax(1).numpy()
    np.testing.assert_array_equal(log[-1], pred == targets(split, "superclass"))
    assert load_correctness(run).shape == (2, len(digits.load_split(primary=False)))


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


def test_resuming_a_state_saved_before_train_logging(tmp_path, digits):
    out = tmp_path / "resumed"
    assert train(digits, "digits_mlp", "superclass", out, FAST, progress=False, stop_after_epochs=1)
    state = torch.load(out / "last.pt", weights_only=True)
    del state["train_correctness"]  # as a protocol v1 run left it
    torch.save(state, out / "last.pt")
    card = train(digits, "digits_mlp", "superclass", out, FAST, progress=False)
    assert len(card["history"]) == 2 and "train_eval_acc" not in card["history"][-1]
    assert load_train_correctness(out) is None  # no log with a hole in it
    assert load_correctness(out).shape == (2, 540)
