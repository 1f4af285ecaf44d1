"""`subclassbench train` (subclassbench.training.trainer): cards, determinism, resume, random-init control,
norm switch, train-split correctness logs, augmentation and precision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.tasks.task import load_task
from subclassbench.training.trainer import Recipe, load_correctness, load_train_correctness, package_run, targets, train

FAST = Recipe(epochs=2, batch_size=128)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("run") / "cnn"
    return out, train(digits, "digits_cnn", "superclass", out, FAST, progress=False)


def test_run_writes_a_loadable_encoder_and_a_checked_card(digits_run):
    out, card = digits_run
    assert card["weights_sha256"] == sha256_file(out / "model.safetensors")
    assert json.loads((out / "card.json").read_text()) == card
    assert card["arch"] == "digits_cnn" and card["labels"] == "superclass" and card["num_classes"] == 5
    assert card["task_definition_fingerprint"] == load_task("digits-5").definition_fingerprint
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert card["recipe"]["seed"] == 0 and card["recipe"]["epochs"] == 2
    assert 0.5 < card["final_test_acc"] <= 1.0
    encoder = load_encoder("builtin:digits_cnn", weights=out, sample_shape=(1, 8, 8))  # the folder works
    assert encoder.weights["sha256"] == card["weights_sha256"]
    assert encoder.model.head.out_features == 5


def test_correctness_log_is_bit_packed_per_epoch(digits_run):
    out, card = digits_run
    correct = load_correctness(out)
    assert correct.shape == (2, 540) and correct.dtype == bool
    assert correct[-1].mean() == pytest.approx(card["final_test_acc"])
    with np.load(out / "correctness.npz") as data:
        assert data["packed"].dtype == np.uint8 and data["packed"].shape == (2, 68)  # 1 bit per sample and epoch
        assert list(data["test_ids"]) == load_task("digits-5").load_split().images.ids


def test_same_seed_gives_identical_weights(tmp_path, digits, digits_run):
    _, card = digits_run
    again = train(digits, "digits_cnn", "superclass", tmp_path / "again", FAST, progress=False)
    assert again["weights_sha256"] == card["weights_sha256"]
    other = train(
        digits, "digits_cnn", "superclass", tmp_path / "other", Recipe(epochs=2, batch_size=128, seed=1), progress=False
    )
    assert other["weights_sha256"] != card["weights_sha256"]


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, digits, digits_run):
    _, uninterrupted = digits_run
    out = tmp_path / "resumed"
    assert train(digits, "digits_cnn", "superclass", out, FAST, progress=False, stop_after_epochs=1) == {
        "interrupted_after_epoch": 1
    }
    assert not (out / "model.safetensors").exists()
    card = train(digits, "digits_cnn", "superclass", out, FAST, progress=False)
    assert card["weights_sha256"] == uninterrupted["weights_sha256"]
    assert [h["test_acc"] for h in card["history"]] == [h["test_acc"] for h in uninterrupted["history"]]


def test_resume_refuses_a_different_configuration(tmp_path, digits):
    out = tmp_path / "run"
    train(digits, "digits_cnn", "superclass", out, FAST, progress=False, stop_after_epochs=1)
    with pytest.raises(SubclassbenchError, match="different task, architecture, labels or recipe"):
        train(digits, "digits_cnn", "subclass", out, FAST, progress=False)
    card = train(digits, "digits_cnn", "subclass", out, FAST, progress=False, resume=False)
    assert card["num_classes"] == 10


def test_random_init_control(tmp_path, digits):
    a = train(digits, "digits_cnn", "superclass", tmp_path / "a", Recipe(epochs=0), progress=False)
    b = train(digits, "digits_cnn", "superclass", tmp_path / "b", Recipe(epochs=0, seed=1), progress=False)
    assert a["history"] == [] and a["final_test_acc"] is None
    assert a["weights_sha256"] != b["weights_sha256"]


def test_synthetic_vectors_train_an_mlp(tmp_path):
    card = train(load_task("synthetic-hier"), "mlp", "subclass", tmp_path / "mlp", FAST, progress=False)
    assert card["num_classes"] == 12 and card["augment"] == "none"
    encoder = load_encoder("builtin:mlp", weights=tmp_path / "mlp" / "card.json", sample_shape=(32,))
    assert encoder.model.head.out_features == 12


def test_norm_switch_is_recorded_and_reloaded(tmp_path, digits):
    recipe = Recipe(epochs=1, batch_size=256)
    card = train(
        digits, "cifar_resnet20", "coarse", tmp_path / "ln", recipe, arch_kwargs={"norm": "ln"}, progress=False
    )
    assert card["arch_kwargs"] == {"norm": "ln"}
    encoder = load_encoder("builtin:cifar_resnet20", weights=tmp_path / "ln", sample_shape=(1, 8, 8))
    assert isinstance(encoder.model.bn1, torch.nn.GroupNorm)
    assert encoder.info()["arch_kwargs"] == {"norm": "ln"}
    none = load_encoder("builtin:cifar_resnet20", arch_kwargs={"norm": "none"})
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.GroupNorm) for m in none.model.modules())


def test_an_unnormalised_resnet_starts_as_identity_blocks_and_trains(tmp_path, digits):
    """norm=none: each residual branch is scaled by a SkipInit gain that starts at 0 (He init alone makes a
    ResNet-20 without normalisation diverge at any usable learning rate); bn and ln have no such gain."""
    from subclassbench.encoders.architectures import ARCHITECTURES

    build = ARCHITECTURES["cifar_resnet20"].build
    none = build(num_classes=5, in_chans=1, norm="none")
    gains = [m.skip_gain for m in none.modules() if getattr(m, "skip_gain", None) is not None]
    assert len(gains) == 9 and all(float(g.detach()) == 0.0 for g in gains)
    x = torch.randn(4, 16, 8, 8)
    block = none.layer1[0]
    assert torch.equal(block(x), torch.relu(x))  # a block at initialisation passes its input on
    bn = build(num_classes=5, in_chans=1, norm="bn")
    assert not any("skip_gain" in key for key in bn.state_dict())  # shipped weights keep their keys
    card = train(digits, "cifar_resnet20", "coarse", tmp_path / "none", Recipe(epochs=2, batch_size=64),
                 arch_kwargs={"norm": "none"}, progress=False)  # fmt: skip
    losses = [entry["loss"] for entry in card["history"]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_a_diverging_run_stops_with_the_fix_and_no_card(tmp_path, digits):
    out = tmp_path / "diverged"
    with pytest.raises(SubclassbenchError, match=r"training diverged: the loss is nan in epoch 1 .*lower --lr"):
        train(digits, "digits_mlp", "coarse", out, Recipe(epochs=2, lr=1e12), progress=False)
    assert not (out / "card.json").exists() and not (out / "model.safetensors").exists()
    result = CliRunner().invoke(app, ["train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "1",
                                 "--lr", "1e12", "--out", str(tmp_path / "cli")])  # fmt: skip
    assert result.exit_code == 2 and result.output.startswith("error: training diverged"), result.output


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": "medium"}, "--labels must be one of superclass, subclass"),
        ({"arch": "digits_cnn", "arch_kwargs": {"norm": "ln"}}, "--norm does not apply to digits_cnn"),
        ({"arch": "cifar_resnet20", "arch_kwargs": {"norm": "weird"}}, "unknown norm 'weird'"),
        ({"arch": "alexnet"}, "unknown builtin architecture 'alexnet'"),
    ],
)
def test_bad_training_requests(tmp_path, digits, kwargs, message):
    args = {"arch": "digits_cnn", "labels": "superclass", **kwargs}
    with pytest.raises(SubclassbenchError, match=message):
        train(digits, out=tmp_path / "x", recipe=FAST, progress=False, **args)


def test_wrong_card_architecture(digits_run):
    out, _ = digits_run
    with pytest.raises(SubclassbenchError, match="model card says arch 'digits_cnn'"):
        load_encoder("builtin:digits_mlp", weights=out)


def test_package_run(tmp_path, digits_run):
    out, card = digits_run
    path = package_run(out, "test_tag", tmp_path)
    packaged = json.loads(path.with_suffix(".json").read_text())
    assert packaged["weights_file"] == "digits_cnn.test_tag.safetensors"
    assert packaged["correctness_file"] == "digits_cnn.test_tag.correctness.npz"
    assert load_correctness(out).shape == (2, 540)
    assert sha256_file(path) == card["weights_sha256"] == packaged["weights_sha256"]


def test_cli_train_then_evaluate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app, ["train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "1", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "evaluate with --model builtin:digits_mlp" in result.output
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            "builtin:digits_mlp",
            "--weights",
            str(out),
            "--out",
            str(tmp_path / "r.json"),
            "--quiet",
            "--metrics",
            "clusterability",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    bad = runner.invoke(app, ["train", "--task", "digits-5", "--arch", "nope", "--out", str(tmp_path / "n")])
    assert bad.exit_code == 2 and "unknown builtin architecture" in bad.stderr
    assert np.isfinite(json.loads((out / "card.json").read_text())["history"][0]["loss"])


def test_epochs_zero_equals_the_registry_random_init(tmp_path, digits):
    train(digits, "digits_cnn", "superclass", tmp_path / "init", Recipe(epochs=0), progress=False)
    trained = load_encoder("builtin:digits_cnn", weights=tmp_path / "init", sample_shape=(1, 8, 8)).model
    registry = load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5).model
    assert all(torch.equal(v, registry.state_dict()[k]) for k, v in trained.state_dict().items())


def test_momentum_zero_and_fresh_start_cleanup(tmp_path, digits):
    out = tmp_path / "run"
    train(digits, "digits_cnn", "superclass", out, Recipe(epochs=1, batch_size=256), progress=False)
    assert (out / "card.json").exists()
    train(
        digits,
        "digits_cnn",
        "coarse",
        out,
        Recipe(epochs=2, batch_size=256, momentum=0.0),
        progress=False,
        resume=False,
        stop_after_epochs=1,
    )
    assert not (out / "card.json").exists() and not (out / "model.safetensors").exists()  # no stale run survives
    with pytest.raises(SubclassbenchError, match="--momentum and --weight-decay"):
        train(digits, "digits_cnn", "superclass", out, Recipe(epochs=1, weight_decay=-1.0), progress=False)


def test_the_crop_padding_is_an_eighth_of_the_image_at_most_4_px():
    """CIFAR (32 px) and larger keep the standard 4 px, so every shipped run trains as before; 8×8 digits
    shift by at most 1 px."""
    from subclassbench.training.trainer import crop_pad

    assert [crop_pad(size) for size in (8, 16, 24, 32, 64, 224)] == [1, 2, 3, 4, 4, 4]


# --------------------------------------------------------------------------- train-split correctness logs


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


# --------------------------------------------------------------------------- augmentation and precision


runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_batched_crop_flip_draws_and_crops_as_the_per_image_loop():
    """The vectorised augmentation (one gather, any device) equals a per-image reference from the same draws."""
    import torch

    from subclassbench.training.trainer import crop_flip

    x = torch.rand(16, 3, 8, 8)
    reference_rng, rng = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    offsets = torch.randint(0, 9, (16, 2), generator=reference_rng)
    flips = torch.rand(16, generator=reference_rng) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    expected = torch.stack([
        padded[i, :, t : t + 8, s : s + 8].flip(-1) if f else padded[i, :, t : t + 8, s : s + 8]
        for i, ((t, s), f) in enumerate(zip(offsets.tolist(), flips.tolist(), strict=True))
    ])  # fmt: skip
    assert torch.equal(crop_flip(x, rng), expected)


def test_train_precision_is_recorded_and_fp32_keeps_earlier_identities(tmp_path):
    from subclassbench.training.trainer import Recipe

    assert "precision" not in Recipe().to_dict()  # runs made before --precision keep their config hash
    done = cli(
        "train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "1", "--precision", "bf16",
        "--out", tmp_path / "run", "-q",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["recipe"]["precision"] == "bf16" and card["environment"]["device"] == "cpu"
    bad = cli("train", "--task", "digits-5", "--arch", "digits_mlp", "--precision", "fp8", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "--precision must be one of fp32, bf16" in bad.output
    absent = cli("train", "--task", "digits-5", "--arch", "digits_mlp", "--device", "cuda:7", "--out", tmp_path / "y")
    assert absent.exit_code == 2 and "not available here" in absent.output


def test_permuted_labels_shuffle_the_training_labels_only(digits):
    split = digits.load_split("train", None, primary=False)
    test_split = digits.load_split(digits.evaluation_split, None, primary=False)
    shuffled = targets(split, "permuted", seed=3, train=True)
    # The same labels (class sizes kept), moved among the images; fixed by the seed, changed by another seed.
    assert np.array_equal(np.sort(shuffled), np.sort(split.superclass))
    assert np.mean(shuffled == split.superclass) < 0.5
    assert np.array_equal(shuffled, targets(split, "permuted", seed=3, train=True))
    assert not np.array_equal(shuffled, targets(split, "permuted", seed=4, train=True))
    fine = targets(split, "permuted-subclass", seed=3, train=True)
    assert np.array_equal(np.sort(fine), np.sort(split.global_subclass))
    # Test accuracy is read against the true labels, so a permuted-label network sits at chance on it.
    assert np.array_equal(targets(test_split, "permuted", seed=3), test_split.superclass)
    assert np.array_equal(targets(test_split, "permuted-subclass", seed=3), test_split.global_subclass)


def test_a_permuted_label_run_fits_noise_and_tests_at_chance(tmp_path, digits):
    card = train(digits, "digits_mlp", "permuted", tmp_path / "p", Recipe(epochs=3, seed=0), progress=False)
    assert card["labels"] == "permuted" and card["num_classes"] == len(digits.superclasses)
    assert abs(card["final_test_acc"] - 1 / len(digits.superclasses)) < 0.1


def test_a_parameterless_architecture_gets_a_run_folder_only_untrained(tmp_path, digits):
    # Raw pixels as a negative control: the identity "network" is scored like any run, but cannot train.
    card = train(digits, "identity", "superclass", tmp_path / "id", Recipe(epochs=0), progress=False)
    assert card["final_test_acc"] is None and (tmp_path / "id" / "model.safetensors").is_file()
    with pytest.raises(SubclassbenchError, match="no parameters to train; use --epochs 0"):
        train(digits, "identity", "superclass", tmp_path / "id2", Recipe(epochs=1), progress=False)
