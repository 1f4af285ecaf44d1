"""Train reference encoders on a task's superclass or subclass labels (``subclassbench train``).

A run trains a builtin architecture on the task's train split under a recorded
recipe and writes, into its output folder:

* ``model.safetensors`` and ``card.json`` — the weights and a model card with
  the architecture, task fingerprint, label granularity, full recipe, seed,
  per-epoch loss and train/test accuracy, environment and the weights' sha256;
* ``correctness.npz`` — per-epoch, per-test-sample correctness, bit-packed
  (``np.packbits`` along samples), with the test ids: the input of the
  agreement-over-training metric (Pliushch et al. 2022);
* ``last.pt`` — the full training state after the latest epoch, so an
  interrupted run resumes where it stopped and ends with the same weights as
  an uninterrupted one (CPU, same torch build and thread count);
* ``checkpoints/epoch_NNN.safetensors`` every ``checkpoint_every`` epochs.

``--epochs 0`` writes the seeded random initialisation: the random-init
control of the coarse-vs-fine comparison.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench import architectures
from subclassbench.encoders import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.hashing import sha256_file, sha256_json
from subclassbench.tasks import SplitData, Task

LABELS = ("coarse", "fine")
AUGMENTS = ("auto", "none", "crop_flip")


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a run besides task, architecture and labels."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: str = "auto"  # auto: crop_flip for RGB images of 32 px and more, none otherwise
    seed: int = 0
    checkpoint_every: int = 0

    def resolved_augment(self, sample_shape: tuple[int, ...]) -> str:
        if self.augment != "auto":
            return self.augment
        return "crop_flip" if len(sample_shape) == 3 and sample_shape[0] == 3 and sample_shape[1] >= 32 else "none"


def targets(split: SplitData, labels: str) -> np.ndarray:
    """Superclass index (coarse) or global subclass index in hierarchy order (fine)."""
    if labels == "coarse":
        return split.superclass
    offsets = np.cumsum([0] + [len(s.subclasses) for s in split.task.superclasses])
    return offsets[split.superclass] + split.subclass


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding, and a random horizontal flip (standard CIFAR augmentation)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        top, left = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, top : top + h, left : left + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def _check_arch_kwargs(arch: str, arch_kwargs: dict[str, Any]) -> None:
    info = architectures.ARCHITECTURES.get(arch)
    if info is None:
        raise SubclassbenchError(f"unknown builtin architecture '{arch}'; see `subclassbench encoders`")
    accepted = inspect.signature(info.build).parameters
    for key in arch_kwargs:
        if key not in accepted:
            raise SubclassbenchError(f"--{key} does not apply to {arch}; it applies to the cifar_resnet* family")
    if "norm" in arch_kwargs and arch_kwargs["norm"] not in architectures.NORMS:
        raise SubclassbenchError(f"unknown norm '{arch_kwargs['norm']}'; choose from {', '.join(architectures.NORMS)}")


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _accuracy(model: nn.Module, preprocess: Any, split: SplitData, y: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Per-sample correctness (bool) of ``model`` on ``split``."""
    model.eval()
    correct = np.empty(len(split), dtype=bool)
    with torch.inference_mode():
        for start in range(0, len(split), batch):
            index = np.arange(start, min(start + batch, len(split)))
            pred = model(preprocess(split.images.load(index))).argmax(dim=1).numpy()
            correct[index] = pred == y[index]
    return correct


def train(
    task: Task,
    arch: str,
    labels: str,
    out: Path,
    recipe: Recipe,
    data: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out``; return its model card.

    ``stop_after_epochs`` ends this call early, as an interruption would (tests).
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    if labels not in LABELS:
        raise SubclassbenchError(f"--labels must be one of {', '.join(LABELS)}, not '{labels}'")
    if recipe.augment not in AUGMENTS:
        raise SubclassbenchError(f"--augment must be one of {', '.join(AUGMENTS)}, not '{recipe.augment}'")
    if recipe.epochs < 0 or recipe.batch_size < 1 or recipe.lr <= 0 or recipe.momentum < 0 or recipe.weight_decay < 0:
        raise SubclassbenchError("--epochs must be ≥ 0, --batch-size ≥ 1, --lr > 0, --momentum and --weight-decay ≥ 0")
    arch_kwargs = dict(arch_kwargs or {})
    _check_arch_kwargs(arch, arch_kwargs)
    train_split = task.load_split("train", data, primary=False)
    test_split = task.load_split(task.evaluation_split, data, primary=False)
    n_classes = len(task.superclasses) if labels == "coarse" else task.n_subclasses
    config = {
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "task": task.name,
        "task_definition_fingerprint": task.definition_fingerprint,
        "train_manifest_sha256": train_split.manifest_digest,
        "labels": labels,
        "num_classes": n_classes,
        "recipe": asdict(recipe),
    }
    config_hash = sha256_json(config)

    encoder = load_encoder(  # built under the recipe seed: it alone fixes the initialisation
        f"builtin:{arch}",
        sample_shape=train_split.images.sample_shape,
        num_classes=n_classes,
        arch_kwargs=arch_kwargs,
        init_seed=recipe.seed,
    )
    model = encoder.model
    preprocess = encoder.preprocessing
    augment = recipe.resolved_augment(train_split.images.sample_shape)
    y_train = torch.from_numpy(targets(train_split, labels))
    y_test = targets(test_split, labels)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,  # torch rejects Nesterov without momentum
        weight_decay=recipe.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(recipe.epochs, 1))
    generator = torch.Generator().manual_seed(recipe.seed)
    history: list[dict[str, Any]] = []
    correctness: list[np.ndarray] = []
    elapsed = 0.0
    start_epoch = 0

    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last.pt"
    if not (state_path.exists() and resume):  # a fresh start: no stale outputs of an earlier run survive
        for stale in ("card.json", "model.safetensors", "correctness.npz", "last.pt"):
            (out / stale).unlink(missing_ok=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if state_path.exists() and resume:
        state = torch.load(state_path, map_location="cpu", weights_only=False)  # our own file
        if state["config_hash"] != config_hash:
            raise SubclassbenchError(
                f"{out} holds a run with a different task, architecture, labels or recipe; "
                "choose another --out, or pass --no-resume to start over"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, correctness, elapsed = state["history"], state["correctness"], state["elapsed"]
        start_epoch = state["epoch"]

    steps_per_epoch = -(-len(train_split) // recipe.batch_size)
    bar = tqdm(
        total=recipe.epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=f"train {arch} {labels}",
        unit="step",
        disable=not progress or None,
    )
    loss_fn = nn.CrossEntropyLoss()
    last_epoch = recipe.epochs if stop_after_epochs is None else min(recipe.epochs, start_epoch + stop_after_epochs)
    for epoch in range(start_epoch, last_epoch):
        began = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_split), generator=generator)
        total_loss, seen, hits = 0.0, 0, 0
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            x = train_split.images.load(idx.numpy())
            if augment == "crop_flip":
                x = crop_flip(x, generator)
            logits = model(preprocess(x))
            loss = loss_fn(logits, y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            hits += int((logits.argmax(1) == y_train[idx]).sum())
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(
                epoch=f"{epoch + 1}/{recipe.epochs}", loss=f"{total_loss / seen:.3f}", acc=f"{hits / seen:.3f}"
            )
        scheduler.step()
        correct = _accuracy(model, preprocess, test_split, y_test)
        correctness.append(correct)
        elapsed += time.perf_counter() - began
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(total_loss / seen, 6),
                "train_acc": round(hits / seen, 6),  # running accuracy under augmentation, as in most recipes
                "test_acc": round(float(correct.mean()), 6),
                "lr": scheduler.get_last_lr()[0],
            }
        )
        bar.set_postfix(
            epoch=f"{epoch + 1}/{recipe.epochs}", loss=f"{total_loss / seen:.3f}", test_acc=f"{correct.mean():.3f}"
        )
        if recipe.checkpoint_every and (epoch + 1) % recipe.checkpoint_every == 0:
            (out / "checkpoints").mkdir(exist_ok=True)
            save_file(_state_dict(model), str(out / "checkpoints" / f"epoch_{epoch + 1:03d}.safetensors"))
        _atomic_torch_save(
            {
                "config_hash": config_hash,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "correctness": correctness,
                "elapsed": elapsed,
            },
            state_path,
        )
    bar.close()
    if last_epoch < recipe.epochs:
        return {"interrupted_after_epoch": last_epoch}

    model.eval()
    save_file(_state_dict(model), str(out / "model.safetensors"))
    test_ids = np.asarray(test_split.images.ids)
    packed = np.packbits(np.asarray(correctness, dtype=bool).reshape(len(correctness), len(test_split)), axis=1)
    np.savez_compressed(
        out / "correctness.npz",
        packed=packed,
        n_samples=len(test_split),
        epochs=len(correctness),
        test_ids=test_ids,
        labels=y_test,
    )
    card = {
        **config,
        "labels_description": {
            "coarse": f"superclass labels of {task.name} ({n_classes} classes)",
            "fine": f"subclass labels of {task.name} ({n_classes} classes)",
        }[labels],
        "seed": recipe.seed,
        "epochs": recipe.epochs,
        "augment": augment,
        "optimizer": f"SGD(momentum={recipe.momentum}, nesterov={recipe.nesterov}) + {recipe.schedule} LR, "
        "cross-entropy",
        "train_split": {"name": "train", "n_samples": len(train_split), "source": train_split.source},
        "test_split": {
            "name": test_split.split,
            "n_samples": len(test_split),
            "manifest_sha256": test_split.manifest_digest,
            "source": test_split.source,
        },
        "history": history,
        "final_test_acc": history[-1]["test_acc"] if history else None,
        "train_seconds": round(elapsed, 1),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "correctness_file": "correctness.npz",
        "weights_file": "model.safetensors",
        "weights_sha256": sha256_file(out / "model.safetensors"),
    }
    tmp = out / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, out / "card.json")  # written last and atomically: a card means a finished run
    return card


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def load_correctness(run_dir: str | Path) -> np.ndarray:
    """Unpack ``correctness.npz`` into a bool array (epochs × test samples)."""
    with np.load(Path(run_dir) / "correctness.npz") as data:
        return np.unpackbits(data["packed"], axis=1, count=int(data["n_samples"])).astype(bool)


def package_run(run_dir: str | Path, tag: str, dest: Path) -> Path:
    """Copy a finished run into the packaged weights as ``<arch>.<tag>.safetensors`` plus card."""
    run_dir = Path(run_dir)
    card = json.loads((run_dir / "card.json").read_text())
    name = f"{card['arch']}.{tag}"
    shutil.copyfile(run_dir / card["weights_file"], dest / f"{name}.safetensors")
    correctness = None
    if card.get("correctness_file") and (run_dir / card["correctness_file"]).is_file():
        correctness = f"{name}.correctness.npz"
        shutil.copyfile(run_dir / card["correctness_file"], dest / correctness)
    card = {**card, "weights_file": f"{name}.safetensors", "correctness_file": correctness}
    (dest / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return dest / f"{name}.safetensors"
