"""Train reference encoders on a task's superclass or subclass labels (``subclassbench train``).

A run trains a builtin architecture on the task's train split under a recorded
recipe and writes, into its output folder:

* ``model.safetensors`` and ``card.json`` — the weights and a model card with
  the architecture, task fingerprint, label granularity, full recipe, seed,
  per-epoch loss and train/test accuracy, environment and the weights' sha256;
* ``correctness.npz`` — per-epoch, per-sample correctness on the test split
  and on the train split (the latter scored in eval mode, without
  augmentation, after each epoch), bit-packed (``np.packbits`` along
  samples), with the sample ids: the input of the agreement-over-training
  metric (Pliushch et al. 2022). Runs written before protocol v2 hold only
  the test arrays; :func:`load_train_correctness` returns None for them;
* ``last.pt`` — the full training state after the latest epoch, so an
  interrupted run resumes where it stopped and ends with the same weights as
  an uninterrupted one (CPU, same torch build and thread count);
* ``checkpoints/epoch_NNN.safetensors`` every ``checkpoint_every`` epochs.

``--epochs 0`` writes the seeded random initialisation: the random-init
control of the coarse-vs-fine comparison.
"""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench.core.files import TMP_PATTERN, atomic_path, atomic_write, check_writable_folder, locked
from subclassbench.core.hashing import sha256_file, sha256_json
from subclassbench.core.limits import check_finite, check_seed
from subclassbench.encoders import architectures
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError, first_line
from subclassbench.features.extraction import DTYPES
from subclassbench.tasks.datasources import EncodedBatch
from subclassbench.tasks.task import SplitData, Task

# "permuted" ("permuted-subclass"): the superclass (subclass) labels of the training images shuffled among them
# once, by a permutation drawn from the run's seed (Zhang et al. 2017's random labels, class sizes kept): a
# negative control, a network that fits labels carrying no information about the images. Its test accuracy is
# read on the true labels, so it sits at chance.
LABELS = ("superclass", "subclass", "permuted", "permuted-subclass")
SUBCLASS_LABELS = ("subclass", "permuted-subclass")  # trained against the subclasses, not the superclasses
LABEL_ALIASES = {"coarse": "superclass", "fine": "subclass"}  # earlier names, still accepted
AUGMENTS = ("auto", "none", "crop_flip")
PRECISIONS = tuple(DTYPES)  # the forward-pass precisions extraction knows


def _cosine(optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


# Recipe.schedule → the learning-rate schedule it names (epochs = the run's length).
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, int], Any]] = {"cosine": _cosine}


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
    precision: str = "fp32"  # fp32, or bf16 autocast for the forward pass (weights and optimizer stay fp32)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as fingerprinted: ``precision`` only when not fp32, so earlier runs keep their identity."""
        out = asdict(self)
        if self.precision == "fp32":
            del out["precision"]
        return out

    def resolved_augment(self, sample_shape: tuple[int, ...]) -> str:
        if self.augment != "auto":
            return self.augment
        return "crop_flip" if len(sample_shape) == 3 and sample_shape[0] == 3 and sample_shape[1] >= 32 else "none"


PERMUTATION_SALT = 0x5EED_1AB5  # mixed with the run's seed, so the permutation is not the shuffle order's


def targets(split: SplitData, labels: str, seed: int = 0, train: bool = False) -> np.ndarray:
    """What a network is trained or tested on: the superclass index or the global subclass index in hierarchy
    order; for ``permuted`` (``permuted-subclass``) training images, those labels permuted among the images with
    ``seed``."""
    labels = LABEL_ALIASES.get(labels, labels)
    true = split.global_subclass if labels in SUBCLASS_LABELS else split.superclass
    if labels.startswith("permuted") and train:
        order = np.random.default_rng([PERMUTATION_SALT, seed]).permutation(len(true))
        return np.asarray(true)[order]
    return true


def crop_pad(size: int) -> int:
    """Zero padding of the random crop: CIFAR's 4 px (an eighth of 32 px), an eighth of smaller images (1 px at
    8 px, where 4 px would shift digits half off the canvas), never more than 4 px."""
    return max(1, min(4, size // 8))


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding, and a random horizontal flip (standard CIFAR augmentation).

    The random draws come from ``generator`` (on the CPU, whatever the batch's device), so a run is the
    same on any device; the crops are one gather over the whole batch, on the batch's device."""
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # n × h
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = offsets[:, 1:] + torch.where(flips[:, None], cols.flip(-1), cols)  # n × w, reversed when flipped
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _to_device(batch: torch.Tensor | EncodedBatch, device: torch.device, non_blocking: bool = False) -> torch.Tensor:
    """A loaded batch on ``device``; encoded images (``--decoder torchvision``) are decoded there, as
    feature extraction does."""
    if isinstance(batch, EncodedBatch):
        return batch.decode(device)
    return batch.to(device, non_blocking=non_blocking)


def _accuracy(
    model: nn.Module, preprocess: Any, split: SplitData, y: np.ndarray, device: torch.device, batch: int = 1024
) -> np.ndarray:
    """Per-sample correctness (bool) of ``model`` on ``split``."""
    model.eval()
    correct = np.empty(len(split), dtype=bool)
    with torch.inference_mode():
        for start in range(0, len(split), batch):
            index = np.arange(start, min(start + batch, len(split)))
            pred = model(preprocess(_to_device(split.images.load(index), device))).argmax(dim=1).cpu().numpy()
            correct[index] = pred == y[index]
    return correct


class _TrainImages:
    """The train split's images for minibatches: held on the device as one tensor when they are an
    in-memory array (no per-step host copy), else loaded batch by batch."""

    def __init__(self, split: SplitData, device: torch.device) -> None:
        self.split, self.device = split, device
        self.resident = None
        if device.type != "cpu" and not split.images.decodes:
            self.resident = _to_device(split.images.load(np.arange(len(split))), device)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            return self.resident[idx.to(self.device)]
        return _to_device(self.split.images.load(idx.numpy()), self.device, non_blocking=True)


# --------------------------------------------------------------------------- the run folder

# The files a run writes; a fresh start removes these (and only these) from its folder.
RUN_FILES = ("card.json", "model.safetensors", "correctness.npz", "last.pt")
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAME = re.compile(r"epoch_\d{3,}\.safetensors")


def check_run_folder(out: Path) -> None:
    """``out`` must be absent, empty, or a run folder of ours: training never deletes a file it did not write."""
    if out.exists() and not out.is_dir():
        raise SubclassbenchError(f"--out {out} is a file; pass a folder for the run")
    check_writable_folder(out)
    if not out.is_dir():
        return

    def ours(p: Path) -> bool:  # a run's files (as files), its checkpoints folder, a killed run's temporary files
        if p.name in RUN_FILES:
            return p.is_file()
        return (p.name == CHECKPOINTS and p.is_dir()) or bool(TMP_PATTERN.fullmatch(p.name))

    foreign = [p.name for p in out.iterdir() if not ours(p)]
    checkpoints = out / CHECKPOINTS
    if checkpoints.is_dir():
        foreign += [
            f"{CHECKPOINTS}/{p.name}"
            for p in checkpoints.iterdir()
            if not (p.is_file() and (CHECKPOINT_NAME.fullmatch(p.name) or TMP_PATTERN.fullmatch(p.name)))
        ]
    if foreign:
        raise SubclassbenchError(
            f"--out {out} holds files that are not a subclassbench run's ({', '.join(sorted(foreign)[:3])}); "
            "pass an empty or new folder"
        )


def _clear_run(out: Path) -> None:
    """A fresh start: remove an earlier run's outputs (only the files a run writes)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    checkpoints = out / CHECKPOINTS
    if checkpoints.is_dir():
        for path in checkpoints.iterdir():
            if CHECKPOINT_NAME.fullmatch(path.name):
                path.unlink()
        if not any(checkpoints.iterdir()):
            checkpoints.rmdir()


def _load_state(path: Path) -> dict[str, Any]:
    """The resume state, read without unpickling code (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "config_hash" not in state:
            raise ValueError("not a training state")
        state["correctness"] = [np.asarray(c.numpy(), dtype=bool) for c in state["correctness"]]
        # States saved before train correctness was recorded lack the key: None means "not recorded".
        if state.get("train_correctness") is not None:
            state["train_correctness"] = [np.asarray(c.numpy(), dtype=bool) for c in state["train_correctness"]]
    except Exception as exc:  # torch raises many types for truncated, foreign or unsafe files
        raise SubclassbenchError(
            f"cannot resume from {path} ({first_line(exc, 80)}); pass --no-resume to start the run over"
        ) from None
    return state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    # Correctness logs are stored as torch tensors so the file loads with weights_only=True.
    payload = {**state, "correctness": [torch.from_numpy(c) for c in state["correctness"]]}
    if state.get("train_correctness") is not None:
        payload["train_correctness"] = [torch.from_numpy(c) for c in state["train_correctness"]]
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


# --------------------------------------------------------------------------- training


@dataclass
class _Run:
    """A run's model, optimiser and progress: what the resume state saves and restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    config_hash: str
    history: list[dict[str, Any]] = field(default_factory=list)
    correctness: list[np.ndarray] = field(default_factory=list)
    # None when a resumed state predates train-split logging: its earlier epochs cannot be filled in,
    # so the run records none rather than a log with holes.
    train_correctness: list[np.ndarray] | None = field(default_factory=list)
    elapsed: float = 0.0
    epoch: int = 0

    def state(self) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "correctness": self.correctness,
            "train_correctness": self.train_correctness,
            "elapsed": self.elapsed,
        }

    def restore(self, state: dict[str, Any], out: Path) -> None:
        if state["config_hash"] != self.config_hash:
            raise SubclassbenchError(
                f"{out} holds a run with a different task, architecture, labels or recipe; "
                "choose another --out, or pass --no-resume to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.correctness, self.elapsed = state["history"], state["correctness"], state["elapsed"]
        self.train_correctness = state.get("train_correctness")
        self.epoch = state["epoch"]


def check_request(labels: str, recipe: Recipe, arch: str, arch_kwargs: dict[str, Any]) -> str:
    labels = LABEL_ALIASES.get(labels, labels)
    if labels not in LABELS:
        raise SubclassbenchError(f"--labels must be one of {', '.join(LABELS)}, not '{labels}'")
    if recipe.augment not in AUGMENTS:
        raise SubclassbenchError(f"--augment must be one of {', '.join(AUGMENTS)}, not '{recipe.augment}'")
    if recipe.precision not in PRECISIONS:
        raise SubclassbenchError(f"--precision must be one of {', '.join(PRECISIONS)}, not '{recipe.precision}'")
    if recipe.schedule not in SCHEDULES:
        raise SubclassbenchError(f"schedule must be one of {', '.join(SCHEDULES)}, not '{recipe.schedule}'")
    for name, value in (("--lr", recipe.lr), ("--momentum", recipe.momentum), ("--weight-decay", recipe.weight_decay)):
        check_finite(value, name)  # NaN would pass every bound below and diverge an epoch later
    if recipe.epochs < 0 or recipe.batch_size < 1 or recipe.lr <= 0 or recipe.momentum < 0 or recipe.weight_decay < 0:
        raise SubclassbenchError("--epochs must be ≥ 0, --batch-size ≥ 1, --lr > 0, --momentum and --weight-decay ≥ 0")
    if recipe.momentum >= 1:  # SGD's velocity then grows without bound
        raise SubclassbenchError(f"--momentum must be below 1 (0.9 is usual), got {recipe.momentum}")
    check_seed(recipe.seed)
    architectures.check_switches(arch, arch_kwargs)
    return labels


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
    device: str = "cpu",
) -> dict[str, Any]:
    """Train (or resume) a run in ``out``; return its model card.

    ``labels`` is ``superclass``, ``subclass``, or ``permuted`` / ``permuted-subclass`` (negative
    controls). ``out`` must be new, empty or an earlier run's folder. ``stop_after_epochs`` ends this
    call early, as an interruption would (tests).
    """
    arch_kwargs = dict(arch_kwargs or {})
    labels = check_request(labels, recipe, arch, arch_kwargs)
    check_run_folder(out)
    train_split = task.load_split("train", data, primary=False)
    test_split = task.load_split(task.evaluation_split, data, primary=False)
    n_classes = task.n_subclasses if labels in SUBCLASS_LABELS else len(task.superclasses)
    config = {
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "task": task.name,
        "task_definition_fingerprint": task.definition_fingerprint,
        "train_manifest_sha256": train_split.manifest_digest,
        "labels": labels,
        "num_classes": n_classes,
        "recipe": recipe.to_dict(),
    }
    encoder = load_encoder(  # built under the recipe seed: it alone fixes the initialisation
        f"builtin:{arch}",
        sample_shape=train_split.images.sample_shape,
        num_classes=n_classes,
        arch_kwargs=arch_kwargs,
        init_seed=recipe.seed,
    )
    parameters = list(encoder.model.parameters())
    if not parameters:
        if recipe.epochs:
            raise SubclassbenchError(f"{arch} has no parameters to train; use --epochs 0 to write its run folder")
        # An architecture without parameters (identity: raw pixels, a negative control) still gets a run folder,
        # so it is scored like any other run; SGD refuses an empty list, and nothing will step.
        parameters = [nn.Parameter(torch.zeros(0))]
    optimizer = torch.optim.SGD(
        parameters,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,  # torch rejects Nesterov without momentum
        weight_decay=recipe.weight_decay,
    )
    encoder.model.to(torch.device(device))  # before the optimizer holds state: it follows its parameters
    scheduler = SCHEDULES[recipe.schedule](optimizer, max(recipe.epochs, 1))
    generator = torch.Generator().manual_seed(recipe.seed)
    run = _Run(encoder.model, optimizer, scheduler, generator, sha256_json(config))
    with locked(out):
        out.mkdir(parents=True, exist_ok=True)
        state_path = out / "last.pt"
        if state_path.exists() and resume:
            try:
                run.restore(_load_state(state_path), out)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a state that loads but does not fit
                raise SubclassbenchError(
                    f"cannot resume from {state_path} ({first_line(exc, 80)}); pass --no-resume to start over"
                ) from None
        else:  # a fresh start: no stale outputs of an earlier run survive
            _clear_run(out)
        last_epoch = recipe.epochs if stop_after_epochs is None else min(recipe.epochs, run.epoch + stop_after_epochs)
        where = torch.device(device)
        _train_epochs(run, encoder, train_split, test_split, labels, recipe, out, last_epoch, progress, where)
        if last_epoch < recipe.epochs:
            return {"interrupted_after_epoch": last_epoch}
        return _finish(run, config, task, train_split, test_split, labels, recipe, out, where)


def _train_epochs(
    run: _Run,
    encoder: Any,
    train_split: SplitData,
    test_split: SplitData,
    labels: str,
    recipe: Recipe,
    out: Path,
    last_epoch: int,
    progress: bool,
    device: torch.device,
) -> None:
    """Epochs ``run.epoch + 1 … last_epoch``, saving the resume state after each.

    Loss and accuracy accumulate on the device and are read once per epoch: a per-step ``.item()``
    would stall a GPU at every step."""
    from subclassbench.core.progress import bar as progress_bar
    from subclassbench.core.progress import stage

    model, preprocess = run.model, encoder.preprocessing
    augment = recipe.resolved_augment(train_split.images.sample_shape)
    y_train = torch.from_numpy(targets(train_split, labels, recipe.seed, train=True)).to(device)
    y_test = targets(test_split, labels)
    images = _TrainImages(train_split, device)
    autocast = torch.autocast(device.type, dtype=DTYPES[recipe.precision], enabled=recipe.precision != "fp32")
    y_train_np = y_train.cpu().numpy()
    steps_per_epoch = -(-len(train_split) // recipe.batch_size)
    if run.epoch:
        stage(f"train: resuming after epoch {run.epoch}/{recipe.epochs}", progress)
    bar = progress_bar(
        recipe.epochs * steps_per_epoch,
        f"train {encoder.arch} {labels}",
        "step",
        progress,
        initial=run.epoch * steps_per_epoch,
        leave=True,
    )
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(run.epoch, last_epoch):
        began = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_split), generator=run.generator)
        sum_loss = torch.zeros((), dtype=torch.float64, device=device)
        sum_hits = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            x = images(idx)
            if augment == "crop_flip":
                x = crop_flip(x, run.generator, crop_pad(x.shape[-1]))
            target = y_train[idx.to(device)]
            with autocast:
                logits = model(preprocess(x))
                loss = loss_fn(logits.float(), target)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            sum_loss += loss.detach().double() * len(idx)
            sum_hits += (logits.detach().argmax(1) == target).sum()
            seen += len(idx)
            bar.update(1)
        total_loss, hits = float(sum_loss), int(sum_hits)
        if not np.isfinite(total_loss):  # diverged: its weights are NaN, and every later number would be too
            raise SubclassbenchError(
                f"training diverged: the loss is {total_loss} in epoch {epoch + 1} of {out}; lower --lr "
                "(an architecture without normalisation needs a smaller one); epochs before it are kept"
            )
        run.scheduler.step()
        correct = _accuracy(model, preprocess, test_split, y_test, device)
        run.correctness.append(correct)
        entry = {
            "epoch": epoch + 1,
            "loss": round(total_loss / seen, 6),
            "train_acc": round(hits / seen, 6),  # running accuracy under augmentation, as in most recipes
            "test_acc": round(float(correct.mean()), 6),
            "lr": run.scheduler.get_last_lr()[0],
        }
        if run.train_correctness is not None:
            # The train split as the network now classifies it (eval mode, no augmentation): the input of
            # train-split agreement. Inference only, so the weights and RNG streams are as without it.
            train_correct = _accuracy(model, preprocess, train_split, y_train_np, device)
            run.train_correctness.append(train_correct)
            entry["train_eval_acc"] = round(float(train_correct.mean()), 6)
        run.elapsed += time.perf_counter() - began
        run.history.append(entry)
        bar.set_postfix(
            epoch=f"{epoch + 1}/{recipe.epochs}",
            loss=f"{total_loss / seen:.3f}",
            acc=f"{hits / seen:.3f}",
            test_acc=f"{correct.mean():.3f}",
        )
        # One line per epoch as well as the bar: a log (no TTY, no bar) still shows how training goes.
        stage(
            f"train: epoch {epoch + 1}/{recipe.epochs} loss {entry['loss']:.4f} train acc {entry['train_acc']:.3f} "
            f"test acc {entry['test_acc']:.3f} ({time.perf_counter() - began:.1f} s)",
            progress,
        )
        if recipe.checkpoint_every and (epoch + 1) % recipe.checkpoint_every == 0:
            _save_weights(model, out / CHECKPOINTS / f"epoch_{epoch + 1:03d}.safetensors")
        run.epoch = epoch + 1
        _save_state(out / "last.pt", run.state())
    bar.close()


def _save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(_state_dict(model), str(tmp))


def _finish(
    run: _Run,
    config: dict[str, Any],
    task: Task,
    train_split: SplitData,
    test_split: SplitData,
    labels: str,
    recipe: Recipe,
    out: Path,
    device: torch.device,
) -> dict[str, Any]:
    """Write the weights, the correctness log and (last) the card: a card means a finished run."""
    run.model.eval()
    _save_weights(run.model, out / "model.safetensors")
    n_test, epochs = len(test_split), len(run.correctness)
    arrays: dict[str, Any] = {
        "packed": np.packbits(np.asarray(run.correctness, dtype=bool).reshape(epochs, n_test), axis=1),
        "n_samples": n_test,
        "epochs": epochs,
        "test_ids": np.asarray(test_split.images.ids),
        "labels": targets(test_split, labels),
    }
    train_log = run.train_correctness
    if train_log is not None and len(train_log) == epochs:  # a partial train log is no log: leave it out
        n_train = len(train_split)
        arrays |= {
            "train_packed": np.packbits(np.asarray(train_log, dtype=bool).reshape(epochs, n_train), axis=1),
            "train_n_samples": n_train,
            "train_ids": np.asarray(train_split.images.ids),
            "train_labels": targets(train_split, labels, recipe.seed, train=True),
        }
    with atomic_path(out / "correctness.npz") as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    history = run.history
    card = {
        **config,
        "labels_description": f"{labels} labels of {task.name} ({config['num_classes']} classes)",
        "seed": recipe.seed,
        "epochs": recipe.epochs,
        "augment": recipe.resolved_augment(train_split.images.sample_shape),
        "optimizer": f"SGD(momentum={recipe.momentum}, nesterov={recipe.nesterov}) + {recipe.schedule} LR, "
        "cross-entropy",
        "train_split": {"name": "train", "n_samples": len(train_split), "source": train_split.source},
        "test_split": {
            "name": test_split.split,
            "n_samples": n_test,
            "manifest_sha256": test_split.manifest_digest,
            "source": test_split.source,
        },
        "history": history,
        "final_test_acc": history[-1]["test_acc"] if history else None,
        "train_seconds": round(run.elapsed, 1),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "device": str(device),
            **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        },
        "correctness_file": "correctness.npz",
        "weights_file": "model.safetensors",
        "weights_sha256": sha256_file(out / "model.safetensors"),
    }
    atomic_write(out / "card.json", json.dumps(card, indent=2) + "\n")
    return card


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def load_correctness(run_dir: str | Path) -> np.ndarray:
    """Unpack ``correctness.npz`` into a bool array (epochs × test samples)."""
    with np.load(Path(run_dir) / "correctness.npz", allow_pickle=False) as data:
        return np.unpackbits(data["packed"], axis=1, count=int(data["n_samples"])).astype(bool)


def load_train_correctness(run_dir: str | Path) -> np.ndarray | None:
    """Unpack the train-split log of ``correctness.npz`` (epochs × train samples), or None when not recorded.

    Runs trained before protocol v2 (or resumed from a state saved before it)
    have no train arrays; that is "not recorded", not an error.
    """
    with np.load(Path(run_dir) / "correctness.npz", allow_pickle=False) as data:
        if "train_packed" not in data:
            return None
        return np.unpackbits(data["train_packed"], axis=1, count=int(data["train_n_samples"])).astype(bool)


def package_run(run_dir: str | Path, tag: str, dest: Path) -> Path:
    """Copy a finished run into the packaged weights as ``<arch>.<tag>.safetensors`` plus card."""
    run_dir = Path(run_dir)
    card = json.loads((run_dir / "card.json").read_text())
    name = f"{card['arch']}.{tag}"
    atomic_write(dest / f"{name}.safetensors", (run_dir / card["weights_file"]).read_bytes())
    correctness = None
    if card.get("correctness_file") and (run_dir / card["correctness_file"]).is_file():
        correctness = f"{name}.correctness.npz"
        atomic_write(dest / correctness, (run_dir / card["correctness_file"]).read_bytes())
    card = {**card, "weights_file": f"{name}.safetensors", "correctness_file": correctness}
    atomic_write(dest / f"{name}.json", json.dumps(card, indent=2) + "\n")
    return dest / f"{name}.safetensors"
