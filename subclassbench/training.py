"""Train reference encoders on a task's labels under a recorded recipe.

This is the minimal trainer behind the packaged digits reference encoder; it
trains a builtin architecture on the task's train split with superclass
(``coarse``) or subclass (``fine``) labels and returns the model plus a model
card that records everything needed to reproduce it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench.encoders import load_encoder
from subclassbench.hashing import sha256_file
from subclassbench.tasks import SplitData, Task


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0


def _targets(split: SplitData, labels: str) -> np.ndarray:
    if labels == "coarse":
        return split.superclass
    offsets = np.cumsum([0] + [len(s.subclasses) for s in split.task.superclasses])
    return offsets[split.superclass] + split.subclass


def _accuracy(model: nn.Module, preprocess: Any, split: SplitData, targets: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        x = preprocess(split.images.load(np.arange(len(split))))
        pred = model(x).argmax(dim=1).numpy()
    return float((pred == targets).mean())


def train_classifier(
    task: Task, arch: str, labels: str = "coarse", recipe: Recipe = Recipe()
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``builtin:<arch>`` on the task's train split; evaluate on its test split each epoch."""
    torch.manual_seed(recipe.seed)
    train = task.load_split("train")
    test = task.load_split("test")
    n_classes = len(task.superclasses) if labels == "coarse" else task.n_subclasses
    encoder = load_encoder(f"builtin:{arch}", sample_shape=train.images.sample_shape, num_classes=n_classes)
    model = encoder.model
    torch.manual_seed(recipe.seed)
    for module in model.modules():  # re-seed the init so the recipe seed alone fixes it
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    y_train = torch.from_numpy(_targets(train, labels))
    y_test = _targets(test, labels)
    x_train = encoder.preprocessing(train.images.load(np.arange(len(train))))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    generator = torch.Generator().manual_seed(recipe.seed)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(total / len(order), 6),
                "train_acc": round(_accuracy(model, encoder.preprocessing, train, y_train.numpy()), 6),
                "test_acc": round(_accuracy(model, encoder.preprocessing, test, y_test), 6),
            }
        )
    model.eval()
    card = {
        "arch": arch,
        "task": task.name,
        "task_definition_fingerprint": task.definition_fingerprint,
        "labels": labels,
        "num_classes": n_classes,
        "recipe": asdict(recipe),
        "optimizer": "SGD(momentum, nesterov=False) + CosineAnnealingLR, cross-entropy, no augmentation",
        "history": history,
        "final_test_acc": history[-1]["test_acc"],
    }
    return model, card


def save_weights(model: nn.Module, card: dict[str, Any], path: Path) -> dict[str, Any]:
    """Write ``path`` (safetensors) and ``path`` with ``.json`` (the card, with the sha256)."""
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    card = {**card, "weights_file": path.name, "weights_sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card
