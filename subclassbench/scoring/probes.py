"""Linear probes on frozen features (protocol v1 transfer recipe, after Harun et al. 2024).

Features are standardised with the training set's mean and standard
deviation; a zero-initialised linear layer is trained with AdamW (lr 1e-3, weight decay 0),
batch 128, 30 epochs, label smoothing 0.1, from a fixed seed. Protocol v2:
10% of the training rows (stratified, seeded) are held out; the epoch with the
best held-out accuracy is selected and every evaluation set is scored once, at
that epoch, and at the final epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from subclassbench.features.matrices import Rows, column_moments


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


# Largest stacked block of training features (bytes) one batched program holds on the CPU; wider groups
# are split. It bounds scoring's host memory (with the held-out and scored rows, about 1.2× this), and is
# above every shipped result's largest group (ResNet-56 on CIFAR: 319 MiB), whose groups it leaves as they were.
GROUP_BYTES = 512 << 20
GPU_GROUP_SHARE = 0.25  # on a GPU: this share of its memory, so wide layers' probes batch too


def group_bytes(device: torch.device) -> int:
    """The stacked-feature budget of one batched program on ``device``."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * GPU_GROUP_SHARE)
    return GROUP_BYTES


def fit_probe(
    x_train: np.ndarray | Rows,
    y_train: np.ndarray,
    evaluations: dict[str, tuple[np.ndarray | Rows, np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe = ProbeRecipe(),
    predict: tuple[str, ...] = (),
    device: str = "cpu",
) -> ProbeFit:
    """One linear probe: :func:`fit_probes` with a single layer."""
    sets = {name: ([x], y) for name, (x, y) in evaluations.items()}
    return fit_probes([x_train], y_train, sets, n_classes, recipe, predict, device)[0]


def fit_probes(
    x_train: Sequence[np.ndarray | Rows],
    y_train: np.ndarray,
    evaluations: Mapping[str, tuple[Sequence[np.ndarray | Rows], np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe = ProbeRecipe(),
    predict: tuple[str, ...] = (),
    device: str = "cpu",
) -> list[ProbeFit]:
    """Train one linear probe per layer on the same rows and labels; score each evaluation set once,
    at the epoch chosen on held-out training rows.

    ``x_train[i]`` and ``evaluations[name][0][i]`` are layer ``i``'s features: arrays, or lazy
    :class:`~subclassbench.features.matrices.Rows` of a cached matrix, read a block at a time while a group's
    stacked features are filled, so memory holds one group, never every layer.
    The evaluation sets never influence any choice (v1 took the best epoch on
    the scored set itself, which overstates accuracy). ``predict`` names sets
    whose selected-epoch predictions are returned too.

    Layers of one width are trained together as one batched program
    (``baddbmm`` over a layer axis): every probe sees the same minibatch
    order (one seeded permutation per epoch, as a lone probe would), its own
    loss term and its own AdamW state, so each layer's probe follows the
    recipe exactly as if trained alone; only the Python and kernel-launch
    overhead is shared.
    """
    recipe.check()
    train_rows = [Rows.of(x) for x in x_train]
    evaluation_rows = {name: ([Rows.of(x) for x in xs], y) for name, (xs, y) in evaluations.items()}
    y_train = np.asarray(y_train, dtype=np.int64)
    held = holdout_rows(y_train, recipe.holdout_fraction, recipe.seed)
    fits: dict[int, ProbeFit] = {}  # layer index → its probe (groups are by width, not in layer order)
    torch_device = torch.device(device)
    # One torch thread on CPU: probe steps are small, and on shared cores extra threads made lone probes
    # ~10× slower and batched groups no faster (benchmarks/bench_gpu.py under load).
    cpu = torch_device.type == "cpu"
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)
    try:
        budget = group_bytes(torch_device)
        for group in _groups([x.shape[1] for x in train_rows], len(y_train), budget):
            layer_sets = {name: ([xs[i] for i in group], y) for name, (xs, y) in evaluation_rows.items()}
            # A lone layer over the budget cannot be split by grouping: its fit rows are read per minibatch.
            stream = len(group) == 1 and _stacked_bytes(train_rows[group[0]].shape[1], 1, len(y_train)) > budget
            fitted = _fit_group(
                [train_rows[i] for i in group], y_train, held, layer_sets, n_classes, recipe, predict, torch_device,
                stream,
            )  # fmt: skip
            for i, fit in zip(group, fitted, strict=True):
                fits[i] = fit
    finally:
        if cpu:
            torch.set_num_threads(threads)
    return [fits[i] for i in range(len(train_rows))]  # every layer is in one group


def _stacked_bytes(width: int, n_layers: int, n_rows: int) -> int:
    return n_layers * width * n_rows * 4  # float32


def _groups(widths: list[int], n_rows: int, budget: int = GROUP_BYTES) -> list[list[int]]:
    """Layer indices batched together, narrowest first: each group is padded to its widest member and
    holds at most ``budget`` bytes of stacked training features (a lone layer may exceed it)."""
    out: list[list[int]] = []
    for i in sorted(range(len(widths)), key=lambda i: (widths[i], i)):
        if out and _stacked_bytes(widths[i], len(out[-1]) + 1, n_rows) <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


Moments = tuple[np.ndarray, np.ndarray] | None  # a layer's fit-row means and stds (None: not standardised)


def _moments(fit_x: Rows, standardize: bool) -> Moments:
    if not standardize:
        return None
    mean, std = column_moments(fit_x)
    std[std < 1e-8] = 1.0  # constant (e.g. dead) units stay at zero instead of blowing up
    return mean, std


def _scaled(part: np.ndarray, moments: Moments) -> np.ndarray:
    """Rows standardised as ``(x - mean) / std`` in float64, then cast to float32: elementwise, so a block,
    a minibatch or the whole matrix give each row the same values."""
    if moments is not None:
        scaled = part - moments[0]  # float64
        scaled /= moments[1]
        part = scaled
    return part.astype(np.float32)


def _stack(
    train: list[Rows], others: list[list[Rows]], moments: list[Moments], device: torch.device, with_train: bool = True
) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """Per-layer standardised (with the fit rows' statistics), zero-padded to the widest layer and stacked
    to G × n × D on ``device``. A padded column is zero in every row, so its gradient is zero and its weights
    stay at their zero init under AdamW (no update, decay of zero): it changes no logit.

    Layers are read and standardised a block of rows at a time straight into the stacked tensors, with
    the moments of :func:`~subclassbench.features.matrices.column_moments` (numpy's own, bit for bit): the same values
    as standardising whole matrices, without a whole float64 copy of any. ``with_train=False`` stacks only
    ``others`` (the fit rows are then read a minibatch at a time, :class:`_StreamedRows`)."""
    width = max(x.shape[1] for x in train)
    sets = (train, *others) if with_train else others
    stacked = [torch.zeros((len(train), len(rows[0]), width), device=device) for rows in sets]
    for i, fit_x in enumerate(train):
        sources = [fit_x, *(o[i] for o in others)] if with_train else [o[i] for o in others]
        for block, source in zip(stacked, sources, strict=True):
            start = 0
            for part in source.blocks():
                block[i, start : start + len(part), : part.shape[1]] = torch.from_numpy(_scaled(part, moments[i]))
                start += len(part)
    return (stacked[0], stacked[1:]) if with_train else (None, stacked)


class _StreamedRows:
    """A group's fit rows read, standardised and padded one minibatch at a time instead of stacked.

    For a layer whose fit rows alone exceed the group budget (no grouping can split it): memory then holds
    a minibatch of it, not the matrix. ``[:, idx]`` gives exactly the rows the stacked tensor would (the
    same elementwise standardisation), so the probe trains bit for bit as from the stack, at the cost of a
    gather from the (memory-mapped) matrix per step."""

    def __init__(self, train: list[Rows], moments: list[Moments], width: int, device: torch.device) -> None:
        self.train, self.moments, self.device = train, moments, device
        self.shape = (len(train), len(train[0]), width)

    def __getitem__(self, key: tuple[slice, torch.Tensor]) -> torch.Tensor:
        idx = key[1].cpu().numpy()
        out = torch.zeros((self.shape[0], len(idx), self.shape[2]))
        for i, rows in enumerate(self.train):
            part = np.asarray(rows.select(idx))
            out[i, :, : part.shape[1]] = torch.from_numpy(_scaled(part, self.moments[i]))
        return out.to(self.device, non_blocking=True)


def _fit_group(
    x_train: list[Rows],
    y_train: np.ndarray,
    held: np.ndarray,
    evaluations: dict[str, tuple[list[Rows], np.ndarray]],
    n_classes: int,
    recipe: ProbeRecipe,
    predict: tuple[str, ...],
    device: torch.device,
    stream: bool = False,
) -> list[ProbeFit]:
    names = list(evaluations)
    fit_x = [x.select(~held) for x in x_train]
    others = [[x.select(held) for x in x_train], *(list(evaluations[n][0]) for n in names)]
    moments = [_moments(x, recipe.standardize) for x in fit_x]
    stacked, (hold_x, *eval_xs) = _stack(fit_x, others, moments, device, with_train=not stream)
    width = max(x.shape[1] for x in fit_x)
    train_x = _StreamedRows(fit_x, moments, width, device) if stacked is None else stacked
    eval_x = dict(zip(names, eval_xs, strict=True))
    train_y = torch.from_numpy(y_train[~held]).to(device)
    hold_y = torch.from_numpy(y_train[held]).to(device)
    n_layers, n_fit, width = train_x.shape

    probe = nn.Linear(width, n_classes)  # the init is defined on one layer; every layer starts from it
    INITS[recipe.init](probe)
    weight = probe.weight.detach().t().expand(n_layers, -1, -1).clone().to(device).requires_grad_()
    bias = probe.bias.detach().expand(n_layers, 1, -1).clone().to(device).requires_grad_()
    optimizer = OPTIMIZERS[recipe.optimizer]([weight, bias], lr=recipe.lr, weight_decay=recipe.weight_decay)
    generator = torch.Generator().manual_seed(recipe.seed)
    best_acc = torch.full((n_layers,), -1.0, dtype=torch.float64, device=device)
    best_epoch = torch.zeros(n_layers, dtype=torch.int64, device=device)
    best_w, best_b = weight.detach().clone(), bias.detach().clone()
    for epoch in range(recipe.epochs):
        order = torch.randperm(n_fit, generator=generator).to(device)
        for start in range(0, n_fit, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = torch.baddbmm(bias, train_x[:, idx], weight)  # G × B × C
            loss = F.cross_entropy(
                logits.reshape(-1, n_classes), train_y[idx].repeat(n_layers),
                label_smoothing=recipe.label_smoothing, reduction="none",
            )  # fmt: skip
            loss.view(n_layers, -1).mean(dim=1).sum().backward()  # each layer's own mean loss
            optimizer.step()
        with torch.inference_mode():
            acc = (_argmax(weight, bias, hold_x) == hold_y).double().mean(dim=1)
            better = acc >= best_acc  # the latest of tied epochs: small holdouts tie often, and later is better fit
            best_acc = torch.where(better, acc, best_acc)
            best_epoch = torch.where(better, torch.full_like(best_epoch, epoch + 1), best_epoch)
            best_w[better], best_b[better] = weight.detach()[better], bias.detach()[better]
    with torch.inference_mode():
        final_pred = {n: _argmax(weight, bias, x).cpu().numpy() for n, x in eval_x.items()}
        selected_pred = {n: _argmax(best_w, best_b, x).cpu().numpy() for n, x in eval_x.items()}
    truths = {n: np.asarray(evaluations[n][1]) for n in names}
    accs, epochs = best_acc.cpu().numpy(), best_epoch.cpu().numpy()
    return [
        ProbeFit(
            scores={
                n: ProbeScore(
                    acc=float((selected_pred[n][g] == truths[n]).mean()),
                    final=float((final_pred[n][g] == truths[n]).mean()),
                )
                for n in names
            },
            selected_epoch=int(epochs[g]),
            holdout_acc=float(accs[g]),
            n_fit=int(n_fit),
            n_holdout=int(held.sum()),
            predictions={n: selected_pred[n][g] for n in predict},
        )
        for g in range(n_layers)
    ]


def _argmax(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes, G × n."""
    return torch.baddbmm(bias, x, weight).argmax(dim=2)
