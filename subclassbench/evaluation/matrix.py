"""Model × task matrices: every (model, task, shard) a unit of work, run locally or as Ray tasks.

A cell is one model on one task. It is extracted in ``shards`` contiguous
parts (each a Ray task when ``executor="ray"``), then scored from the feature
cache, and its result written to ``<out>/<model slug>/<task>.json``. A cell
whose result file already exists (and is valid) is skipped, so a killed run
resumes; the cache makes interrupted extraction resume too. The cells run
on :mod:`subclassbench.core.executor` (the executor training runs use too): a
failing cell is retried once, then reported, without stopping the others.

Each worker uses one torch thread: parallelism comes from workers, and the
local and Ray executors then compute bit-identical features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from subclassbench.core import safeyaml
from subclassbench.core.executor import Call, Outcome, RayOptions, Unit, check_executor, run_units
from subclassbench.core.progress import counted, stage
from subclassbench.errors import SubclassbenchError


@dataclass(frozen=True)
class Cell:
    model: str
    task: str
    weights: str | None = None
    data: str | None = None
    metrics: tuple[str, ...] | None = None


@dataclass
class CellOutcome:
    model: str
    task: str
    status: str  # "done", "skipped" (result existed), "failed"
    result: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class MatrixReport:
    outcomes: list[CellOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [asdict(o) for o in self.outcomes]}


def _read_list(path: Path, what: str) -> list[dict[str, Any]]:
    raw = safeyaml.load_file(Path(path))
    if isinstance(raw, dict) and what in raw:
        raw = raw[what]
    if not isinstance(raw, list) or not raw:
        raise SubclassbenchError(f"{path} must list {what}: a YAML list of names or of mappings (see docs/scaling.md)")
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"model" if what == "models" else "task": item}
        key = "model" if what == "models" else "task"
        if not isinstance(item, dict) or key not in item:
            raise SubclassbenchError(f"{path}: every entry of {what} needs a '{key}' field (got {item!r})")
        allowed = {"model", "weights"} if what == "models" else {"task", "data", "metrics"}
        unknown = sorted(set(item) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise SubclassbenchError(f"{path}: unknown field '{unknown[0]}' in {what}; allowed: {known}")
        for field_name in (key, "weights", "data"):
            if field_name in item and item[field_name] is not None and not isinstance(item[field_name], str):
                raise SubclassbenchError(f"{path}: '{field_name}' must be a string (got {item[field_name]!r})")
        metrics = item.get("metrics")
        names_ok = isinstance(metrics, list) and bool(metrics) and all(isinstance(m, str) for m in metrics)
        if metrics is not None and not names_ok:
            raise SubclassbenchError(f"{path}: 'metrics' must be a list of names (got {metrics!r})")
        out.append(item)
    return out


def load_matrix(models_file: Path, tasks_file: Path) -> list[Cell]:
    """``models.yaml``: ``[- model: SPEC, weights: FILE?]``; ``tasks.yaml``: ``[- task: NAME, data: PATH?]``."""
    models = _read_list(models_file, "models")
    tasks = _read_list(tasks_file, "tasks")
    return [
        Cell(
            model=m["model"],
            task=t["task"],
            weights=m.get("weights"),
            data=t.get("data"),
            metrics=tuple(t["metrics"]) if t.get("metrics") else None,
        )
        for m in models
        for t in tasks
    ]


def _request(cell: Cell, cache_dir: str | None, n_shards: int | None, device: str) -> Any:
    from subclassbench.evaluation.request import EvaluationRequest

    return EvaluationRequest(
        model=cell.model,
        task=cell.task,
        weights=cell.weights,
        data=cell.data,
        progress=False,
        metrics=list(cell.metrics) if cell.metrics else None,
        cache_dir=cache_dir,
        n_shards=n_shards,
        device=device,
    )


def result_path(cell: Cell, out: Path) -> Path:
    """``<out>/<model slug>/<task>-<cell hash>.json``: the hash covers weights (by content), data, metrics
    and the task file, so two different cells never share a result file."""
    from subclassbench.core.hashing import canonical_json, sha256_file, sha256_text
    from subclassbench.evaluation.outputs import slug as safe_slug

    slug = safe_slug(cell.model.replace(":", "__"))
    weights = None
    if cell.weights:
        path = Path(cell.weights)
        target = path / "model.safetensors" if path.is_dir() else path
        weights = sha256_file(target) if target.is_file() else cell.weights
    identity = {"weights": weights, "data": cell.data, "metrics": cell.metrics, "task": cell.task}
    task = Path(cell.task).stem if cell.task.endswith((".yaml", ".yml", ".json")) else cell.task  # a task file path
    return out / slug / f"{safe_slug(task)}-{sha256_text(canonical_json(identity))[:8]}.json"


def _finished(path: Path, cell: Cell) -> bool:
    """A valid result of the current task definition and protocol (anything else is recomputed)."""
    from subclassbench.results.result import Result
    from subclassbench.scoring.protocol import protocol_fingerprint
    from subclassbench.tasks.task import load_task

    if not path.is_file():
        return False
    try:
        result = Result.read(path)
    except SubclassbenchError:
        return False
    current = load_task(cell.task).definition_fingerprint
    return result.task["definition_fingerprint"] == current and result.protocol_fingerprint == protocol_fingerprint()


def extract_shard_job(cell: Cell, index: int, n_shards: int, cache_dir: str | None, device: str = "cpu") -> int:
    """One (model, task, shard) unit: fill the cache. Returns the number of layers × splits computed."""
    import torch

    from subclassbench.evaluation.pipeline import extract

    torch.set_num_threads(1)
    stats = extract(_request(cell, cache_dir, None, device), shard=(index, n_shards) if n_shards > 1 else None)
    return stats.misses


def score_job(cell: Cell, out: str, n_shards: int, cache_dir: str | None, device: str = "cpu") -> str:
    """Merge the cell's shards, score from the cache, write the result; returns its path."""
    import torch

    from subclassbench.evaluation.pipeline import evaluate

    torch.set_num_threads(1)
    result = evaluate(_request(cell, cache_dir, n_shards if n_shards > 1 else None, device))
    return str(result.write(result_path(cell, Path(out))))


def _cell_status(outcome: CellOutcome, done: int, total: int, progress: bool) -> None:
    """The stage line of a finished cell: how many of the matrix are done, and how this one ended."""
    detail = outcome.result if outcome.status != "failed" else f"{outcome.error} (after {outcome.attempts} attempts)"
    stage(f"{counted('run', done - 1, total)} {outcome.status}: {outcome.model} × {outcome.task}: {detail}", progress)


def _cell_units(
    cells: list[tuple[int, Cell]], out: Path, n_shards: int, cache_dir: str | None, device: str
) -> list[Unit]:
    """One unit per (position in the matrix, cell): its shard extractions, then its scoring from the merged cache."""
    return [
        Unit(
            final=Call(score_job, (cell, str(out), n_shards, cache_dir, device), "scoring"),
            before=tuple(
                Call(extract_shard_job, (cell, i, n_shards, cache_dir, device), f"extracting shard {i + 1}/{n_shards}")
                for i in range(n_shards)
            ),
            tag=(position, cell),
        )
        for position, cell in cells
    ]


def _run(
    cells: list[Cell], out: Path, n_shards: int, cache_dir: str | None, executor: str, ray: RayOptions, progress: bool
) -> MatrixReport:
    """Every cell whose result is not already there, on the executor; the report keeps the matrix's order."""
    total = len(cells)
    outcomes: dict[int, CellOutcome] = {}
    todo = []
    for position, cell in enumerate(cells):
        path = result_path(cell, out)
        if _finished(path, cell):
            outcomes[position] = CellOutcome(cell.model, cell.task, "skipped", str(path))
            _cell_status(outcomes[position], len(outcomes), total, progress)
        else:
            todo.append((position, cell))
    units = _cell_units(todo, out, n_shards, cache_dir, "cuda" if ray.task_gpus > 0 else "cpu")

    def announce(unit: Unit, call: Call, attempt: int, error: str | None) -> None:
        position, cell = unit.tag
        retry = f" (attempt {attempt}: {error})" if attempt > 1 and call is not unit.final else ""
        stage(f"{counted('run', position, total)} {cell.model} × {cell.task}: {call.label}{retry}", progress)

    def scheduled(n: int) -> None:
        stage(f"run: {n} cell(s) scheduled on Ray ({n_shards} shard(s) each)", progress)

    def finished(outcome: Outcome, _done: int) -> None:
        position, cell = outcome.unit.tag
        outcomes[position] = cell_outcome = CellOutcome(
            cell.model, cell.task, outcome.status, outcome.value, outcome.attempts, outcome.error
        )
        _cell_status(cell_outcome, len(outcomes), total, progress)

    run_units(units, executor, ray, announce, scheduled, finished)
    return MatrixReport([outcomes[i] for i in range(total)])


def run_matrix(
    cells: list[Cell],
    out: Path,
    executor: str = "local",
    n_shards: int = 1,
    cache_dir: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    gpus_per_task: float = 0.0,
    progress: bool = False,
) -> MatrixReport:
    """Run every cell (``progress``: a stage line per cell step and per finished cell, on stderr)."""
    check_executor(executor)
    if n_shards < 1:
        raise SubclassbenchError("--shards must be ≥ 1")
    from subclassbench.encoders.base import EncoderSpec
    from subclassbench.tasks.task import load_task

    for cell in cells:  # malformed specs and unknown tasks fail before any work is scheduled
        EncoderSpec.parse(cell.model)
        load_task(cell.task)
    # Ray workers run in their own folders: hand them absolute paths only.
    from subclassbench.core.cache_dir import cache_root

    out = out.resolve()
    cache_dir = str(Path(cache_dir).resolve() if cache_dir else cache_root().resolve())
    cells = [
        Cell(
            c.model,
            str(Path(c.task).resolve()) if c.task.endswith((".yaml", ".yml", ".json")) else c.task,
            str(Path(c.weights).resolve()) if c.weights and Path(c.weights).exists() else c.weights,
            str(Path(c.data).resolve()) if c.data and Path(c.data).exists() else c.data,
            c.metrics,
        )
        for c in cells
    ]
    options = RayOptions(address, num_cpus, task_gpus=gpus_per_task)
    return _run(cells, out, n_shards, cache_dir, executor, options, progress)
