"""Linear probes on frozen features (protocol v1 transfer recipe, after Harun et al. 2024).

Features are standardised with the training set's mean and standard
deviation; a zero-initialised linear layer is trained with AdamW (lr 1e-3, weight decay 0),
batch 128, 30 epochs, label smoothing 0.1, from a fixed seed. Every
evaluation set is scored after every epoch; the result keeps the best top-1
(the recipe's number) and the final-epoch top-1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


def _zeros(layer: nn.Linear) -> None:
    # Zero init (as in logistic regression solvers): with few steps on small sets a random
    # init would dominate the ~1e-3-sized Adam updates and make accuracy depend on it.
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


# The recipe's named choices → what they do. Each field is fingerprinted, so each is read here.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW}
INITS: dict[str, Callable[[nn.Linear], None]] = {"zeros": _zeros}
BEST_AND_FINAL = "best top-1 over epochs (and final-epoch top-1)"
REPORTS = (BEST_AND_FINAL,)


@dataclass(frozen=True)
class ProbeRecipe:
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 30
    label_smoothing: float = 0.1
    seed: int = 0
    standardize: bool = True
    init: str = "zeros"
    report: str = BEST_AND_FINAL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        for field_name, value, known in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("init", self.init, INITS),
            ("report", self.report, REPORTS),
        ):
            if value not in known:
                raise ValueError(f"probe recipe: unknown {field_name} {value!r}; known: {list(known)}")


@dataclass(frozen=True)
class ProbeScore:
    best: float
    final: float
    best_epoch: int


def _standardize(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # constant (e.g. dead) units stay at zero instead of blowing up
    return [torch.from_numpy(((x - mean) / std).astype(np.float32)) for x in (train, *others)]


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    evaluations: dict[str, tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe = ProbeRecipe(),
) -> dict[str, ProbeScore]:
    """Train one linear probe; return top-1 accuracy on each evaluation set.

    Runs on one torch thread: 128-row steps are too small for intra-op
    parallelism, and on shared cores extra threads made probes ~10× slower
    (the accuracies are identical).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_probe(x_train, y_train, evaluations, n_classes, recipe)
    finally:
        torch.set_num_threads(threads)


def _fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    evaluations: dict[str, tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe,
) -> dict[str, ProbeScore]:
    names = list(evaluations)
    if recipe.standardize:
        xs = _standardize(x_train, *(evaluations[n][0] for n in names))
    else:
        xs = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in (x_train, *(evaluations[n][0] for n in names))]
    train_x, eval_x = xs[0], dict(zip(names, xs[1:], strict=True))
    train_y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    eval_y = {n: np.asarray(evaluations[n][1]) for n in names}

    recipe.check()
    probe = nn.Linear(train_x.shape[1], n_classes)
    INITS[recipe.init](probe)
    optimizer = OPTIMIZERS[recipe.optimizer](probe.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.seed)
    history: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(recipe.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(probe(train_x[idx]), train_y[idx]).backward()
            optimizer.step()
        with torch.inference_mode():
            for n in names:
                pred = probe(eval_x[n]).argmax(dim=1).numpy()
                history[n].append(float((pred == eval_y[n]).mean()))
    scores = {}
    for n in names:
        best_epoch = int(np.argmax(history[n]))
        scores[n] = ProbeScore(best=history[n][best_epoch], final=history[n][-1], best_epoch=best_epoch + 1)
    return scores
