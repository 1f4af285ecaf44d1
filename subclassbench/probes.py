"""Linear probes on frozen features (protocol v1 transfer recipe, after Harun et al. 2024).

Features are standardised with the training set's mean and standard
deviation; a zero-initialised linear layer is trained with AdamW (lr 1e-3, weight decay 0),
batch 128, 30 epochs, label smoothing 0.1, from a fixed seed. Protocol v2:
10% of the training rows (stratified, seeded) are held out; the epoch with the
best held-out accuracy is selected and every evaluation set is scored once, at
that epoch, and at the final epoch.
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
HELD_OUT = (
    "the epoch with the best accuracy on a held-out fraction of the probe's training rows "
    "(stratified by label, seeded; ties: latest), and the final epoch"
)
REPORTS = (HELD_OUT,)


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
    report: str = HELD_OUT
    holdout_fraction: float = 0.1  # of each probe's training rows, never fit on; chooses the epoch

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
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError("probe recipe: holdout_fraction must lie strictly between 0 and 1")


@dataclass(frozen=True)
class ProbeScore:
    """One evaluation set's top-1 at the selected epoch (``acc``) and at the final epoch."""

    acc: float
    final: float


@dataclass(frozen=True)
class ProbeFit:
    scores: dict[str, ProbeScore]
    selected_epoch: int  # 1-based
    holdout_acc: float
    n_fit: int
    n_holdout: int
    predictions: dict[str, np.ndarray]  # selected-epoch class predictions, for the sets asked for


def holdout_rows(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded boolean mask of ``round(fraction · n)`` rows (at least one) held out from fitting.

    Stratified: each class's rows are shuffled and given evenly spaced keys
    (rank + a random offset) / class size; the rows with the smallest keys are
    held out, so every class gives up its share (classes of 10 rows one row
    each at 10 %) and small classes are not emptied wholesale. A class with a
    single row is never held out.
    """
    rng = np.random.RandomState(seed)
    keys = np.full(len(labels), np.inf)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        if len(rows) >= 2:
            keys[rows] = (np.arange(len(rows)) + rng.rand()) / len(rows)
    take = max(1, round(fraction * len(labels)))
    chosen = np.argsort(keys, kind="stable")[:take]
    chosen = chosen[np.isfinite(keys[chosen])]
    held = np.zeros(len(labels), dtype=bool)
    held[chosen] = True
    if not held.any() or held.all():
        raise ValueError(f"a probe needs enough training rows to hold {fraction:.0%} out; got {len(labels)}")
    return held


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
    predict: tuple[str, ...] = (),
) -> ProbeFit:
    """Train one linear probe; score each evaluation set once, at the epoch chosen on held-out training rows.

    The evaluation sets never influence any choice (v1 took the best epoch on
    the scored set itself, which overstates accuracy). ``predict`` names sets
    whose selected-epoch predictions are returned too.

    Runs on one torch thread: 128-row steps are too small for intra-op
    parallelism, and on shared cores extra threads made probes ~10× slower
    (the accuracies are identical).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_probe(x_train, y_train, evaluations, n_classes, recipe, predict)
    finally:
        torch.set_num_threads(threads)


def _fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    evaluations: dict[str, tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe,
    predict: tuple[str, ...],
) -> ProbeFit:
    recipe.check()
    y_train = np.asarray(y_train, dtype=np.int64)
    held = holdout_rows(y_train, recipe.holdout_fraction, recipe.seed)
    names = list(evaluations)
    fit_x, hold_x = x_train[~held], x_train[held]
    others = [hold_x, *(evaluations[n][0] for n in names)]
    if recipe.standardize:  # statistics of the rows the probe is fit on only
        xs = _standardize(fit_x, *others)
    else:
        xs = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in (fit_x, *others)]
    train_x, hold_t, eval_x = xs[0], xs[1], dict(zip(names, xs[2:], strict=True))
    train_y = torch.from_numpy(y_train[~held])
    hold_y = y_train[held]

    probe = nn.Linear(train_x.shape[1], n_classes)
    INITS[recipe.init](probe)
    optimizer = OPTIMIZERS[recipe.optimizer](probe.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.seed)
    best_acc, best_epoch, best_state = -1.0, 0, {k: v.clone() for k, v in probe.state_dict().items()}
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(probe(train_x[idx]), train_y[idx]).backward()
            optimizer.step()
        with torch.inference_mode():
            acc = float((probe(hold_t).argmax(dim=1).numpy() == hold_y).mean())
        if acc >= best_acc:  # the latest of tied epochs: small holdouts tie often, and later is better fit
            best_acc, best_epoch = acc, epoch + 1
            best_state = {k: v.clone() for k, v in probe.state_dict().items()}
    final_state = probe.state_dict()
    final_pred = _predict(probe, eval_x)
    probe.load_state_dict(best_state)
    selected_pred = _predict(probe, eval_x)
    probe.load_state_dict(final_state)
    scores = {
        n: ProbeScore(
            acc=float((selected_pred[n] == np.asarray(evaluations[n][1])).mean()),
            final=float((final_pred[n] == np.asarray(evaluations[n][1])).mean()),
        )
        for n in names
    }
    return ProbeFit(
        scores=scores,
        selected_epoch=best_epoch,
        holdout_acc=best_acc,
        n_fit=int((~held).sum()),
        n_holdout=int(held.sum()),
        predictions={n: selected_pred[n] for n in predict},
    )


def _predict(probe: nn.Linear, xs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        return {n: probe(x).argmax(dim=1).numpy() for n, x in xs.items()}
