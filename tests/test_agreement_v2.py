"""Protocol v2 agreement (Pliushch et al., ECCV 2022): definition, lower bound, train-split logs, old runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.compare import agreement_over_runs
from subclassbench.encoders import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.similarity import agreement, agreement_lower_bound, sample_agreement
from subclassbench.tasks import load_task
from subclassbench.training import Recipe, load_correctness, load_train_correctness, targets, train

FAST = Recipe(epochs=2, batch_size=128)
runner = CliRunner()


# --------------------------------------------------------------------------- the metric


def test_a_sample_no_network_gets_right_is_disagreement():
    # Three networks, one epoch, two samples: x0 right everywhere, x1 wrong everywhere.
    correct = np.array([[[1, 0]], [[1, 0]], [[1, 0]]], dtype=bool)
    np.testing.assert_array_equal(sample_agreement(correct), [[1.0, 0.0]])
    np.testing.assert_array_equal(agreement(correct), [0.5])  # v1 gave 1.0: x1 was left out
    np.testing.assert_array_equal(agreement(np.zeros((3, 2, 10), dtype=bool)), [0.0, 0.0])
    np.testing.assert_array_equal(agreement(np.ones((3, 2, 10), dtype=bool)), [1.0, 1.0])


def test_hand_computed_three_networks():
    correct = np.array(
        [
            [[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]],
            [[1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1]],
            [[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 0]],
        ]
    )
    # Epoch 0: all right on x0, x5 → 2/6; errors 2/6 each → bound 1 − min(1, 1) = 0.
    # Epoch 1: all right on x0–x3 → 4/6; errors 0, 1/6, 1/6 → bound 4/6 (the misses are disjoint).
    np.testing.assert_allclose(agreement(correct), [2 / 6, 4 / 6])
    np.testing.assert_allclose(agreement_lower_bound(correct), [0.0, 4 / 6])
    np.testing.assert_allclose(sample_agreement(correct)[0], [1, 2 / 3, 2 / 3, 2 / 3, 0, 1])
    np.testing.assert_allclose(sample_agreement(correct)[1], [1, 1, 1, 1, 2 / 3, 2 / 3])


def test_single_network_agreement_is_its_accuracy():
    correct = np.random.default_rng(3).random((1, 4, 50)) < 0.7
    np.testing.assert_allclose(agreement(correct), correct[0].mean(axis=1))
    np.testing.assert_allclose(agreement_lower_bound(correct), correct[0].mean(axis=1))


@pytest.mark.parametrize("seed", range(20))
def test_lower_bound_holds_and_agreement_stays_below_the_worst_accuracy(seed):
    rng = np.random.default_rng(seed)
    networks, epochs, samples = rng.integers(1, 6), rng.integers(1, 5), rng.integers(1, 200)
    # Accuracies spread from near 0 to near 1, so both branches of min(Σ err, 1) occur.
    rate = rng.random((networks, epochs, 1))
    correct = rng.random((networks, epochs, samples)) < rate
    agr, bound = agreement(correct), agreement_lower_bound(correct)
    assert np.all(agr >= bound)
    assert np.all(agr <= correct.mean(axis=2).min(axis=0) + 1e-12)
    assert np.all((bound >= 0) & (bound <= 1))


def test_lower_bound_is_reached_when_mistakes_are_disjoint():
    correct = np.ones((3, 1, 9), dtype=bool)
    correct[0, 0, 0:2] = correct[1, 0, 2:4] = correct[2, 0, 4:5] = False
    assert agreement(correct)[0] == agreement_lower_bound(correct)[0] == pytest.approx(4 / 9)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 5), dtype=bool), "3-D"),
        (np.ones((2, 3, 0), dtype=bool), "at least one sample"),
        (np.full((2, 3, 4), 0.5), "0/1"),
    ],
)
def test_bad_correctness_arrays(bad, match):
    for function in (agreement, agreement_lower_bound, sample_agreement):
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
    assert doc["agreement_version"] == "2" and doc["train_not_recorded"] == []
    for part in (doc, doc["train"]):
        agr, low, high = (np.asarray(part[k]) for k in ("agreement", "agreement_lower_bound", "agreement_upper_bound"))
        assert agr.shape == (2,) and np.all(low <= agr) and np.all(agr <= high)
        assert all(s >= 0 for s in part["accuracy_std"])
    assert doc["train"]["n_samples"] > doc["n_samples"] == 540
    result = runner.invoke(app, ["agreement", *map(str, two_runs), "--out", str(tmp_path / "agr")])
    assert result.exit_code == 0, result.output
    assert "train: agreement" in result.output and "lower bound" in result.output
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
