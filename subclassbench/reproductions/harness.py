"""``subclassbench reproduce CLAIM``: train every run a claim needs, score it under the protocol, write the report.

Three stages, each resumable, so an interrupted reproduction continues where it stopped:

1. **train** — every (condition, seed) is a :class:`~subclassbench.training.runs.TrainingRun`, trained with
   :func:`~subclassbench.training.runs.train_runs` (one after another, or one per GPU on Ray); a finished
   run only restores its saved state.
2. **evaluate** — every condition that is scored gets ``results/<run folder>.<task>.json`` beside the run
   folders (a run folder holds only what ``train`` writes), from
   :func:`subclassbench.evaluation.pipeline.evaluate_to_file` (protocol v2, bootstrap intervals). A result that is
   there, reads back clean, and was scored under this protocol from these weights is kept.
3. **report** — the claim's analysis reads the runs and results; the report is written all or nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from subclassbench.core.progress import counted, stage
from subclassbench.errors import SubclassbenchError
from subclassbench.reproductions.plan import DATASETS, Claim, Condition, Plan, datasets_of, training_run
from subclassbench.reproductions.report import NOT_APPLICABLE, ControlVerdict, write_report
from subclassbench.results.result import Result
from subclassbench.training.runs import TrainingRun


@dataclass
class RunRecord:
    """One trained (and possibly scored) network of a reproduction."""

    condition: Condition
    seed: int
    folder: Path
    card: dict[str, Any]
    result: Result | None = None

    @property
    def result_path(self) -> Path:
        return self.folder.parent / "results" / f"{self.folder.name}.{self.condition.scored_on}.json"


@dataclass
class Runs:
    """Everything a claim's analysis reads: the runs by condition, and where their data lives."""

    records: list[RunRecord]
    data: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"

    def of(self, condition: str) -> list[RunRecord]:
        """The runs of one condition, by seed."""
        return sorted((r for r in self.records if r.condition.name == condition), key=lambda r: r.seed)

    def results(self, condition: str) -> list[Result]:
        runs = self.of(condition)
        out = [r.result for r in runs if r.result is not None]
        if len(out) < len(runs):
            raise SubclassbenchError(f"condition '{condition}' has unscored runs; run the evaluate stage")
        return out

    def has(self, condition: str) -> bool:
        return any(r.condition.name == condition for r in self.records)

    def control(self, arm: str, kind: str) -> list[RunRecord]:
        """The runs of ``arm``'s ``kind`` negative control, by seed; [] where the plan has none."""
        return sorted(
            (r for r in self.records if r.condition.stands_for == arm and r.condition.control == kind),
            key=lambda r: r.seed,
        )

    def substituted(self, kind: str) -> Runs:
        """These runs with every arm that has a ``kind`` control replaced by it (seed for seed), under the arm's
        name: the claim's analysis then judges the control as it judges the arm. The controls themselves stay."""
        stand_ins = {
            (r.condition.stands_for, r.seed): r for r in self.records if r.condition.control == kind
        }
        records = []
        for record in self.records:
            stand_in = stand_ins.get((record.condition.name, record.seed))
            if record.condition.control is None and stand_in is not None:
                record = RunRecord(record.condition, record.seed, stand_in.folder, stand_in.card, stand_in.result)
            records.append(record)
        return Runs(records, self.data, self.device)


def _claims() -> dict[str, Claim]:
    from subclassbench.reproductions.claims import CLAIMS

    return CLAIMS


def get_claim(name: str) -> Claim:
    claims = _claims()
    if name not in claims:
        raise SubclassbenchError(f"unknown claim '{name}'; choose from {', '.join(claims)}")
    return claims[name]


def plan_runs(plan: Plan, root: Path, data: dict[str, str]) -> dict[tuple[str, int], TrainingRun]:
    """(condition, seed) → its training run; the data each needs must be given."""
    runs: dict[tuple[str, int], TrainingRun] = {}
    for condition in plan.conditions:
        dataset = datasets_of(condition.task)
        if dataset is not None and dataset not in data:
            raise SubclassbenchError(
                f"arm '{condition.name}' trains on {condition.task}, whose images are not packaged: pass "
                f"--data {dataset}=PATH (cifar10: a folder with cifar10_train.npz and cifar10_test.npz; "
                "tiny-imagenet: the folder of class folders)"
            )
        for seed in plan.seeds:
            runs[(condition.name, seed)] = training_run(plan, condition, seed, root, data)
    return runs


def _read_card(folder: Path) -> dict[str, Any]:
    import json

    try:
        card = json.loads((folder / "card.json").read_text())
        if not isinstance(card, dict) or "weights_sha256" not in card:
            raise ValueError("not a training card")
        return card
    except (OSError, ValueError) as exc:
        raise SubclassbenchError(f"{folder} holds no finished training run ({exc}); run the train stage") from None


def _kept_result(path: Path, card: dict[str, Any], resamples: int) -> Result | None:
    """The result at ``path`` when it is sound, of this protocol, these weights and ``resamples`` bootstrap
    resamples; else None (score again)."""
    from subclassbench.scoring.protocol import protocol_fingerprint

    if not path.is_file():
        return None
    try:
        result = Result.read(path)
    except SubclassbenchError:
        return None  # damaged or edited: scored again, never trusted
    if result.protocol_fingerprint != protocol_fingerprint() or result.weights_sha256 != card["weights_sha256"]:
        return None
    if (result.get("uncertainty") or {}).get("resamples", 0) != resamples:
        return None
    return result


def evaluate_run(
    record: RunRecord, plan: Plan, data: dict[str, str], device: str, score_workers: int, progress: bool
) -> Result:
    from subclassbench.evaluation.pipeline import evaluate_to_file
    from subclassbench.evaluation.request import EvaluationRequest

    condition = record.condition
    path = record.result_path
    kept = _kept_result(path, record.card, plan.bootstrap)
    if kept is not None:
        return kept
    request = EvaluationRequest(
        model=f"builtin:{condition.arch}",
        weights=str(record.folder),
        task=condition.scored_on,
        data=data.get(datasets_of(condition.scored_on) or ""),
        metrics=list(condition.metrics or ()),
        bootstrap=plan.bootstrap,
        device=device,
        progress=progress,
        score_workers=score_workers,
    )
    try:
        result, _ = evaluate_to_file(request, path, force=True)
    except SubclassbenchError as exc:
        raise SubclassbenchError(
            f"scoring arm '{condition.name}', seed {record.seed} ({record.folder}): {exc}"
        ) from None
    return result


def command_line(claim: str, scale: str, data: dict[str, str], device: str, extra: Sequence[str] = ()) -> str:
    parts = ["subclassbench", "reproduce", claim, "--scale", scale]
    for name, path in sorted(data.items()):
        parts += ["--data", f"{name}={path}"]
    if device != "cpu":
        parts += ["--device", device]
    return shlex.join([*parts, *extra])


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a plan, as a dry run lists it."""

    folder: Path
    arms: tuple[str, ...]  # the arms that read it (claims' arms may share a run)
    seed: int
    epochs: int
    status: str  # "trained" (card written), "started" (a resumable state, no card yet) or "to train"
    to_score: int  # results it still needs (missing files; a stale one is found by the evaluate stage)


def dry_run(claim_name: str, scale: str = "cpu", out: Path = Path("runs/reproduce")) -> list[PlannedRun]:
    """What ``reproduce`` would train and score, and what is already there; trains, scores and writes nothing.

    Image data is not needed: run folders are named without it, so a plan can be sized before the data is
    at hand."""
    from subclassbench.training.trainer import Recipe

    plan = get_claim(claim_name).plan(scale)
    placeholders = {name: f"<{name}>" for name in DATASETS}
    runs = plan_runs(plan, Path(out) / scale, placeholders)
    listed: dict[str, PlannedRun] = {}
    unscored: dict[str, set[Path]] = {}  # per run folder, the missing result files (arms may share one)
    for (name, seed), run in runs.items():
        condition = plan.condition(name)
        folder = Path(run.out)
        result_path = RunRecord(condition, seed, folder, {}).result_path
        if condition.metrics and not result_path.is_file():
            unscored.setdefault(run.out, set()).add(result_path)
        known = listed.get(run.out)
        if known is not None:  # a second arm on the same network
            listed[run.out] = replace(known, arms=(*known.arms, name))
            continue
        status = (
            "trained"
            if (folder / "card.json").is_file()
            else "started"
            if (folder / "last.pt").is_file()
            else "to train"
        )
        epochs = int(plan.recipe_of(condition).get("epochs", Recipe().epochs))
        listed[run.out] = PlannedRun(folder, (name,), seed, epochs, status, 0)
    listed = {out: replace(run, to_score=len(unscored.get(out, ()))) for out, run in listed.items()}
    return list(listed.values())


@dataclass
class Reproduction:
    claim: str
    scale: str
    verdict: str | None
    written: list[Path]
    runs: int


def reproduce(
    claim_name: str,
    scale: str = "cpu",
    out: Path = Path("runs/reproduce"),
    report_dir: Path = Path("docs/reproductions"),
    data: dict[str, str] | None = None,
    device: str = "cpu",
    executor: str = "local",
    threads: int = 1,
    gpus_per_task: float = 0.0,
    num_cpus: int | None = None,
    score_workers: int = 1,
    stages: Sequence[str] = ("train", "evaluate", "report"),
    progress: bool = True,
) -> Reproduction:
    """Train, score and report one claim at one scale (see the module docstring)."""
    from subclassbench.evaluation.request import check_device
    from subclassbench.training.runs import train_runs

    unknown = sorted(set(stages) - {"train", "evaluate", "report"})
    if unknown or not stages:
        raise SubclassbenchError(f"unknown stage '{(unknown or [''])[0]}'; use train, evaluate and/or report")
    claim = get_claim(claim_name)
    plan = claim.plan(scale)
    data = dict(data or {})
    check_device(device)
    runs = plan_runs(plan, Path(out) / scale, data)
    if "train" in stages:
        distinct = list({run.out: run for run in runs.values()}.values())  # claims' arms may share a run
        report = train_runs(
            distinct,
            executor=executor,
            device=device if gpus_per_task == 0 else None,
            threads=threads,
            gpus_per_task=gpus_per_task,
            num_cpus=num_cpus,
            progress=progress,
        )
        if report.failed:
            first = report.failed[0]
            raise SubclassbenchError(
                f"{len(report.failed)} training run(s) failed, first {first.run}: {first.error}; "
                "fix it and run the same command again (finished runs are kept)"
            )
    records = [
        RunRecord(plan.condition(name), seed, Path(run.out), _read_card(Path(run.out)))
        for (name, seed), run in runs.items()
    ]
    if "evaluate" in stages or "report" in stages:
        _score_stage(records, plan, data, device, score_workers, "evaluate" in stages, progress)
    if "report" not in stages:
        return Reproduction(claim.name, scale, None, [], len(records))
    verdict, written = _report_stage(claim, plan, Runs(records, data, device), report_dir)
    return Reproduction(claim.name, scale, verdict, written, len(records))


def _score_stage(records: list[RunRecord], plan: Plan, data: dict[str, str], device: str, score_workers: int,
                 evaluate: bool, progress: bool) -> None:  # fmt: skip
    """Give every scored record its result: scored now (``evaluate``) or only read back."""
    scored = [r for r in records if r.condition.metrics]
    for number, record in enumerate(scored):
        if evaluate:
            stage(f"{counted('evaluate', number, len(scored))} {record.folder.name}", progress)
            record.result = evaluate_run(record, plan, data, device, score_workers, progress)
        else:
            record.result = _kept_result(record.result_path, record.card, plan.bootstrap)
            if record.result is None:
                raise SubclassbenchError(f"{record.result_path} is missing or stale; run the evaluate stage")


ANALYSIS_ERRORS = (KeyError, ValueError, IndexError, TypeError, ZeroDivisionError)  # a result lacking a number


def control_verdicts(claim: Claim, plan: Plan, runs: Runs) -> list[ControlVerdict]:
    """The verdict the claim's own rule gives each negative control, applied in place of the arms it stands for.

    A control that earns more than "not reproduced" shows a rule a network that learned nothing could pass.
    Where the rule cannot be applied to a control (an untrained network has no training log to read), the
    verdict is "not applicable" and says why."""
    out = []
    for kind in plan.control_kinds:
        stands_for = list(dict.fromkeys(c.stands_for or "" for c in plan.conditions if c.control == kind))
        try:
            findings = claim.analyse(plan.arms, runs.substituted(kind))
        except ANALYSIS_ERRORS as exc:
            out.append(ControlVerdict(kind, stands_for, NOT_APPLICABLE, f"{type(exc).__name__}: {exc}", {}))
            continue
        out.append(ControlVerdict(kind, stands_for, findings.verdict, findings.why, findings.numbers))
    return out


def _report_stage(claim: Claim, plan: Plan, runs: Runs, report_dir: Path) -> tuple[str, list[Path]]:
    from subclassbench.scoring.protocol import PROTOCOL_VERSION, protocol_fingerprint

    try:
        findings = claim.analyse(plan.arms, runs)
    except ANALYSIS_ERRORS as exc:  # a result without the numbers this claim reads
        raise SubclassbenchError(
            f"cannot analyse {claim.name} from these runs ({type(exc).__name__}: {exc}); run the evaluate stage "
            "again (results of an older protocol or other metrics lack what the claim reads)"
        ) from None
    findings.controls = control_verdicts(claim, plan, runs)
    records = runs.records
    provenance = {
        "protocol_version": PROTOCOL_VERSION,
        "protocol_fingerprint": protocol_fingerprint(),
        "devices": ", ".join(sorted({str(r.card.get("environment", {}).get("device", "?")) for r in records})),
        "train_hours": sum(float(r.card.get("train_seconds") or 0) for r in records) / 3600,
        "runs": {f"{r.condition.name}/s{r.seed}": r.card["weights_sha256"] for r in records},
        # How well each arm learned what it was trained on: read it before any clustering number.
        "test_acc": {c.name: [r.card["final_test_acc"] for r in runs.of(c.name)] for c in plan.conditions},
    }
    paper_data = {d: f"<{d}>" for d in _datasets(claim, "paper")}
    written = write_report(
        report_dir,
        claim,
        plan,
        findings,
        command_line(claim.name, plan.scale, runs.data, runs.device),
        command_line(claim.name, "paper", paper_data, "cuda", ["--executor", "ray", "--gpus-per-task", "1"]),
        provenance,
    )
    return findings.verdict, written


def _datasets(claim: Claim, scale: str) -> list[str]:
    if scale not in claim.plans:
        return []
    found = {datasets_of(c.task) for c in claim.plans[scale].conditions}
    return sorted(d for d in found if d)
