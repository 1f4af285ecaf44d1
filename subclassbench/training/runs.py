"""Many training runs from one file: run one after another, or one per GPU as Ray tasks.

A runs file lists entries; each entry's ``task``, ``arch``, ``labels``, ``seed`` and ``norm`` may be lists,
and the entry stands for every combination of them (a reference recipe's seeds × label kinds in a few
lines). Every run trains into ``<out>/<task>-<arch>[-<norm>]-<labels>-s<seed>`` with
:func:`subclassbench.training.trainer.train`, so a run file's runs are exactly what ``subclassbench train`` would
write, and an interrupted matrix resumes: a finished run's saved state restores at its last epoch and
only rewrites its (identical) outputs; a half-finished one continues from its last epoch.

Under Ray each run is one task that asks for ``gpus_per_task`` GPUs (``cuda`` then) and ``threads`` CPUs:
Ray gives each task its own GPU (it sets ``CUDA_VISIBLE_DEVICES``), so a node with n GPUs trains n runs
at once, and a cluster spreads them over its nodes. The runs go through :mod:`subclassbench.core.executor`
(the executor model × task matrices use too): a failing run is retried once, then reported, without stopping
the others.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from subclassbench.core import safeyaml
from subclassbench.core.executor import Call, Outcome, RayOptions, Unit, check_executor, run_units
from subclassbench.core.limits import MAX_RUNS, check_seed
from subclassbench.core.progress import counted, stage
from subclassbench.errors import SubclassbenchError

GRID_FIELDS = ("task", "arch", "labels", "seed", "norm")  # may be lists: the entry is their product
RECIPE_FIELDS = {  # Recipe field → the type its value must have
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "momentum": float,
    "weight_decay": float,
    "augment": str,
    "checkpoint_every": int,
    "precision": str,
}
FIELDS = (*GRID_FIELDS, "data", *RECIPE_FIELDS)


@dataclass(frozen=True)
class TrainingRun:
    """One run: what ``subclassbench train`` is given, with its run folder."""

    task: str
    arch: str
    labels: str
    seed: int
    out: str
    norm: str | None = None
    data: str | None = None
    recipe: tuple[tuple[str, Any], ...] = ()  # Recipe fields set by the file (others: Recipe's defaults)

    def folder_name(self) -> str:
        from subclassbench.evaluation.outputs import slug

        task = Path(self.task).stem if self.task.endswith((".yaml", ".yml", ".json")) else self.task
        parts = [task, self.arch, *([self.norm] if self.norm else []), self.labels, f"s{self.seed}"]
        return slug("-".join(parts))


@dataclass
class RunOutcome:
    run: str  # the run folder
    status: str  # "done" or "failed"
    attempts: int = 0
    final_test_acc: float | None = None
    train_seconds: float | None = None
    device: str | None = None
    gpu_ids: list[str] = field(default_factory=list)  # the GPUs Ray gave this run's task (empty locally)
    error: str | None = None


@dataclass
class RunsReport:
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [asdict(o) for o in self.outcomes]}


def _values(path: Path, entry: dict[str, Any], name: str) -> list[Any]:
    value = entry.get(name)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SubclassbenchError(f"{path}: '{name}' is an empty list")
    kind = int if name == "seed" else str
    for v in values:
        if v is None and name in ("labels", "seed", "norm"):
            continue  # their defaults
        if not isinstance(v, kind) or isinstance(v, bool):
            raise SubclassbenchError(f"{path}: '{name}' must be a {kind.__name__} or a list of them (got {v!r})")
        if name == "seed":
            check_seed(v, f"{path}: seed")
    return values


def load_runs(path: Path, out: Path) -> list[TrainingRun]:
    """The runs a runs file stands for, in file order (each entry's combinations in the order listed).

    Two entries naming the same run folder are refused: one folder holds one run."""
    raw = safeyaml.load_file(Path(path))
    if isinstance(raw, dict) and "runs" in raw:
        raw = raw["runs"]
    if not isinstance(raw, list) or not raw:
        raise SubclassbenchError(
            f"{path} must list runs: a YAML list of mappings with task and arch (see docs/training.md)"
        )
    runs: list[TrainingRun] = []
    seen: dict[str, TrainingRun] = {}
    expanded = 0
    for entry in raw:
        if not isinstance(entry, dict) or "task" not in entry or "arch" not in entry:
            raise SubclassbenchError(f"{path}: every run needs 'task' and 'arch' fields (got {entry!r})")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise SubclassbenchError(f"{path}: unknown field '{unknown[0]}'; allowed: {', '.join(FIELDS)}")
        recipe = []
        for name, kind in RECIPE_FIELDS.items():
            if name in entry:
                value = entry[name]
                if kind is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise SubclassbenchError(f"{path}: '{name}' must be a {kind.__name__} (got {value!r})")
                recipe.append((name, value))
        data = entry.get("data")
        if data is not None and not isinstance(data, str):
            raise SubclassbenchError(f"{path}: 'data' must be a string (got {data!r})")
        grid = [_values(path, entry, name) for name in GRID_FIELDS]
        expanded += math.prod(len(values) for values in grid)
        if expanded > MAX_RUNS:  # counted before the product is built: lists multiply
            raise SubclassbenchError(
                f"{path} expands to more than {MAX_RUNS:,} runs (its lists multiply); split it into several files"
            )
        for task, arch, labels, seed, norm in itertools.product(*grid):
            run = TrainingRun(task, arch, labels or "superclass", 0 if seed is None else seed, "", norm, data,
                              tuple(recipe))  # fmt: skip
            run = replace(run, out=str(out / run.folder_name()))
            if run.out in seen and seen[run.out] != run:
                raise SubclassbenchError(
                    f"{path}: two runs would train into {run.out} with different settings; "
                    "give them different seeds, labels or tasks"
                )
            if run.out not in seen:
                seen[run.out] = run
                runs.append(run)
    return runs


def _check(run: TrainingRun) -> None:
    """What can be checked before any work is scheduled: the architecture, the task, labels and recipe."""
    from subclassbench.encoders.architectures import ARCHITECTURES
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, check_request

    if run.arch not in ARCHITECTURES:
        raise SubclassbenchError(f"unknown architecture '{run.arch}'; see `subclassbench encoders`")
    load_task(run.task)
    check_request(run.labels, Recipe(seed=run.seed, **dict(run.recipe)), run.arch, _arch_kwargs(run))


def _arch_kwargs(run: TrainingRun) -> dict[str, Any]:
    return {"norm": run.norm} if run.norm else {}


def train_job(run: TrainingRun, device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """One run, in the calling process: train (or resume) and return what its card says."""
    import torch

    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    torch.set_num_threads(threads)
    recipe = Recipe(seed=run.seed, **dict(run.recipe))
    card = train(
        load_task(run.task), run.arch, run.labels, Path(run.out), recipe, run.data, _arch_kwargs(run),
        resume=True, progress=False, device=device,
    )  # fmt: skip
    return {
        "final_test_acc": card["final_test_acc"],
        "train_seconds": card["train_seconds"],
        "device": card["environment"]["device"],
    }


def _report(outcome: RunOutcome, done: int, total: int, progress: bool) -> None:
    if outcome.status == "done":
        detail = f"test acc {outcome.final_test_acc}, {outcome.train_seconds} s on {outcome.device}"
        detail += f" (GPU {','.join(outcome.gpu_ids)})" if outcome.gpu_ids else ""
    else:
        detail = f"{outcome.error} (after {outcome.attempts} attempts)"
    stage(f"{counted('train', done - 1, total)} {outcome.status}: {outcome.run}: {detail}", progress)


def _run_outcome(outcome: Outcome) -> RunOutcome:
    run: TrainingRun = outcome.unit.tag
    card = outcome.value or {}
    return RunOutcome(
        run.out, outcome.status, outcome.attempts, card.get("final_test_acc"), card.get("train_seconds"),
        card.get("device"), outcome.gpu_ids, outcome.error,
    )  # fmt: skip


def train_runs(
    runs: list[TrainingRun],
    executor: str = "local",
    device: str | None = None,
    threads: int = 1,
    gpus_per_task: float = 0.0,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    progress: bool = False,
) -> RunsReport:
    """Train every run. ``device`` defaults to ``cuda`` when Ray gives each task a GPU, else ``cpu``;
    ``num_cpus``/``num_gpus`` size a local Ray cluster (default: what the machine has)."""
    from subclassbench.evaluation.request import check_device

    check_executor(executor)
    if threads < 1:
        raise SubclassbenchError("--threads must be ≥ 1")
    if gpus_per_task < 0 or (gpus_per_task > 0 and executor != "ray"):
        raise SubclassbenchError("--gpus-per-task places runs on Ray's GPUs: use it with --executor ray, ≥ 0")
    device = device or ("cuda" if gpus_per_task > 0 else "cpu")
    if executor == "local" or address is None:  # a remote cluster's devices are checked where the runs land
        check_device(device)
    for run in runs:  # unknown architectures, tasks or labels fail before any training starts
        _check(run)
    # Ray workers run in their own folders: hand them absolute paths only.
    runs = [
        replace(
            run,
            out=str(Path(run.out).resolve()),
            task=str(Path(run.task).resolve()) if run.task.endswith((".yaml", ".yml", ".json")) else run.task,
            data=str(Path(run.data).resolve()) if run.data and Path(run.data).exists() else run.data,
        )
        for run in runs
    ]
    units = [Unit(Call(train_job, (run, device, threads), run.out), tag=run) for run in runs]
    total, position = len(units), {id(unit): i for i, unit in enumerate(units)}

    def announce(unit: Unit, _call: Call, attempt: int, _error: str | None) -> None:
        if attempt == 1:  # once per run, as it starts
            stage(f"{counted('train', position[id(unit)], total)} {unit.tag.out}", progress)

    def scheduled(n: int) -> None:
        stage(f"train: {n} run(s) scheduled on Ray", progress)

    def finished(outcome: Outcome, done: int) -> None:
        _report(_run_outcome(outcome), done, total, progress)

    options = RayOptions(address, num_cpus, num_gpus, task_cpus=threads, task_gpus=gpus_per_task)
    outcomes = run_units(units, executor, options, announce, scheduled, finished)
    return RunsReport([_run_outcome(o) for o in outcomes])
