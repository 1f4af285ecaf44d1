"""Submissions: ``submissions/<name>/model.yaml`` plus ``results/<task>.json``; create, validate, verify.

A submission is declarative (no code): which encoder, which weights (by
sha256), under which license, trained on what and with which label
granularity, and the result files ``subclassbench evaluate`` wrote. CI runs
:func:`validate_tree` on every pull request; :func:`verify` re-runs a
submission where its data and weights are available.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from subclassbench.core import safeyaml
from subclassbench.core.files import atomic_path, atomic_write, check_name, locked
from subclassbench.core.hashing import canonical_json, sha256_file
from subclassbench.core.progress import counted
from subclassbench.core.progress import stage as announce  # `stage` names the staging folder in submit
from subclassbench.errors import SubclassbenchError
from subclassbench.leaderboard.external import check_source, is_external, locate, parse_source
from subclassbench.leaderboard.external import label as source_label
from subclassbench.results import intervals
from subclassbench.results.result import EncoderRecord, Result
from subclassbench.schemas import first_error
from subclassbench.scoring.protocol import protocol_fingerprint
from subclassbench.scoring.samples import sidecar_name

if TYPE_CHECKING:
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.tasks.task import Task

MODEL_FILE = "model.yaml"
RESULTS_DIR = "results"
WEIGHTS_FILE = "weights.safetensors"
LABELS = ("fine", "superclass", "self-supervised", "text-supervised", "none")
LABEL_SETS = ("imagenet-1k",)  # datasets whose labels no task file describes (model.yaml training.label_set)

# Re-running a submission must land within these absolute differences; see docs/submitting.md.
TOLERANCES: dict[str, float] = {
    "ami": 0.01,
    "ari": 0.01,
    "nmi": 0.01,
    "purity": 0.01,
    "matched_acc": 0.01,
    "within_superclass_acc": 0.01,
    "reconstruction_acc": 0.02,  # built on a probe's superclass predictions
    "superclass_acc": 0.02,
    "id_acc": 0.02,
    "subpop_shift_acc": 0.02,
    "subpop_refit_acc": 0.02,
    "ood_mean_acc": 0.02,
}


@dataclass
class Report:
    """Problems (errors) and stale results found in one submission folder, with what was read.

    ``model`` and ``results`` hold the parsed model.yaml and the validated
    results, so callers (the leaderboard, verify) never read a file twice.
    """

    folder: Path
    errors: list[str] = field(default_factory=list)
    stale_reasons: dict[Path, str] = field(default_factory=dict)  # result file → why it is stale
    results: list[Result] = field(default_factory=list)
    model: dict[str, Any] | None = None
    seed_of: dict[Path, int | None] = field(default_factory=dict)  # result file → its training seed (None: primary)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def seed(self, result: Result) -> int | None:
        """The training seed of one of :attr:`results` (None: the primary encoder's, or not from a file)."""
        return None if result.path is None else self.seed_of.get(result.path)

    @property
    def stale(self) -> list[str]:
        return [f"{path}: stale {reason}" for path, reason in self.stale_reasons.items()]


def read_model_file(folder: Path) -> dict[str, Any]:
    path = folder / MODEL_FILE
    if not path.is_file():
        raise SubclassbenchError(f"{path} is missing; run `subclassbench submit` or copy an existing submission")
    raw = safeyaml.load_file(path)
    if not isinstance(raw, dict):
        raise SubclassbenchError(f"{path}: must be a mapping of fields (see docs/submitting.md)")
    check_model(raw, path, folder.name)
    return raw


def check_model(raw: dict[str, Any], path: Path, folder_name: str) -> None:
    """Every rule a model.yaml must meet on its own (the schema, then what a schema cannot say); ``path`` names
    it in messages. ``submit`` checks its entry with this before any evaluation runs."""
    _check_weights_entry(path, raw.get("encoder"))  # before the schema: its messages quote regular expressions
    problem = first_error(raw, "submission")
    if problem:
        raise SubclassbenchError(f"{path}: invalid model file {problem}")
    weights = raw["encoder"].get("weights")
    if weights is not None and not is_external(weights) and weights.get("file") != WEIGHTS_FILE:
        raise SubclassbenchError(f"{path}: encoder.weights.file must be {WEIGHTS_FILE} (the file in this folder)")
    seen_seeds = {training_seed(raw)}
    for entry in raw["encoder"].get("seeds", []):
        if entry["weights"]["file"] != seed_weights_file(entry["seed"]):
            raise SubclassbenchError(
                f"{path}: seed {entry['seed']}'s weights must be {seed_weights_file(entry['seed'])}"
            )
        if entry["seed"] in seen_seeds:
            raise SubclassbenchError(f"{path}: seed {entry['seed']} is listed twice; each seed once")
        seen_seeds.add(entry["seed"])
    if raw["encoder"].get("seeds") and weights is None:
        raise SubclassbenchError(f"{path}: encoder.seeds needs encoder.weights (the first seed's file)")
    if raw["name"] != folder_name:
        raise SubclassbenchError(f"{path}: name '{raw['name']}' must equal the folder name '{folder_name}'")
    training = raw["training"]
    if training["labels"] == "superclass" and not training.get("label_task"):
        raise SubclassbenchError(
            f"{path}: training.labels is superclass, so training.label_task must name the task (--label-task)"
        )
    if training.get("label_task"):  # the board reads its hierarchy (which OOD sets the training labels saw)
        from subclassbench.tasks.task import list_tasks

        if training["label_task"] not in list_tasks():
            raise SubclassbenchError(
                f"{path}: training.label_task {str(training['label_task'])[:80]!r} is not a registered task "
                "(see `subclassbench tasks`)"
            )


def _check_weights_entry(path: Path, encoder: object) -> None:
    """encoder.weights is a committed file or an uncommitted source, never both; a source's paths stay inside
    their folder. Only what is there and of the right type is checked: the schema says the rest."""
    weights = encoder.get("weights") if isinstance(encoder, dict) else None
    if not isinstance(weights, dict):
        return
    if "file" in weights and "source" in weights:
        raise SubclassbenchError(
            f"{path}: encoder.weights has both file (committed) and source (not committed); keep one of them"
        )
    if "file" not in weights and "source" not in weights:
        raise SubclassbenchError(
            f"{path}: encoder.weights needs file ({WEIGHTS_FILE}, committed) or source (where uncommitted weights "
            "come from; see docs/submitting.md)"
        )
    source = weights.get("source")
    if isinstance(source, dict):
        check_source(source, f"{path}: encoder.weights.source")


def repository_of(folder: Path) -> Path:
    """The repository of a submission folder: the folder that holds ``submissions/`` (``shared/`` lies beside it)."""
    return folder.resolve().parent.parent


def weights_path(folder: Path, model: dict[str, Any], seed: int | None = None) -> Path | None:
    """The committed weights file of the primary encoder (``seed`` None) or of one of ``encoder.seeds``.

    None when there is none in the folder: no weights, or weights that are not committed (:func:`locate`).
    """
    weights = declared_weights(model, seed)
    if weights is None or is_external(weights):
        return None
    return folder / str(weights["file"])  # the file name is checked on reading


def declared_weights(model: dict[str, Any], seed: int | None = None) -> dict[str, Any] | None:
    weights: dict[str, Any] | None  # model.yaml's entry, checked against the submission schema
    if seed is None:
        weights = model["encoder"].get("weights")
    else:
        weights = next(e["weights"] for e in model["encoder"].get("seeds", []) if e["seed"] == seed)
    return weights


def training_seed(model: dict[str, Any]) -> int:
    return int(model["training"].get("seed", 0))


def seed_weights_file(seed: int) -> str:
    return f"weights.seed-{seed}.safetensors"


SEED_MARK = ".seed-"


def result_stem(task: str, seed: int | None) -> str:
    """``<task>`` for the primary weights, ``<task>.seed-<k>`` for seed k of ``encoder.seeds``."""
    return task if seed is None else f"{task}{SEED_MARK}{seed}"


def parse_result_stem(stem: str) -> tuple[str, int | None]:
    task, mark, seed = stem.rpartition(SEED_MARK)
    if mark and seed.isdigit() and len(seed) < 10:
        return task, int(seed)
    return stem, None


def validate_submission(folder: Path, tasks: dict[str, Task] | None = None) -> Report:
    """Every problem in one submission, one line each; stale results are reported, not failed.

    ``tasks`` memoises loaded tasks across submissions (one read of each task file per tree).
    """
    report = Report(folder)
    tasks = {} if tasks is None else tasks
    if folder.is_symlink():
        report.error(str(folder), "is a link; a submission is a folder in the tree, not a link to one elsewhere")
    report.errors.extend(special_files(folder))
    if report.errors:  # nothing in a folder with a link or a FIFO is read: it could lead anywhere or block
        return report
    try:
        model = read_model_file(folder)
    except SubclassbenchError as exc:
        report.errors.append(str(exc))
        return report
    report.model = model
    weights_of_seed: dict[str, int | None] = {}
    for seed in [None, *(e["seed"] for e in model["encoder"].get("seeds", []))]:
        declared = declared_weights(model, seed)
        if declared is None:
            continue
        first = weights_of_seed.setdefault(declared["sha256"], seed)
        if first != seed:  # one network counted as two seeds would shrink the spread across seeds
            name = "the first seed" if first is None else f"seed {first}"
            report.error(
                str(folder / MODEL_FILE), f"seed {seed} has the same weights as {name}; list each network once"
            )
        if is_external(declared):  # nothing to hash here; no weights file may be committed beside it
            _check_nothing_committed(report, model)
            continue
        path = folder / declared["file"]
        if not path.is_file():
            report.error(str(path), "weights file is missing; commit it or remove it from model.yaml")
        elif (actual := sha256_file(path)) != declared["sha256"]:
            report.error(str(path), f"sha256 {actual[:12]}… does not match model.yaml's {declared['sha256'][:12]}…")
    results = sorted((folder / RESULTS_DIR).glob("*.json"))
    if not results:
        report.error(str(folder / RESULTS_DIR), "no result files; run `subclassbench submit` to add one")
    for path in results:
        try:
            result = Result.read(path)
        except SubclassbenchError as exc:
            report.errors.append(str(exc))
            continue
        _check_result(report, model, result, path, tasks)
    primaries = {r.task_name for r in report.results if report.seed(r) is None}
    for result in report.results:
        if report.seed(result) is not None and result.task_name not in primaries:
            report.error(str(result.path), f"is a seed of a task without the first seed's {result.task_name}.json")
    return report


def special_files(folder: Path) -> list[str]:
    """One line for each link, FIFO, device or socket under a submission folder (links are not followed).

    A submission arrives by pull request: a link could make `validate` read or hash a file elsewhere on the
    CI machine, and a FIFO would block it. Submissions hold plain files and folders only."""
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            problems.append(f"{path}: is a link; commit the file itself (submissions hold plain files only)")
        elif not (path.is_dir() or path.is_file()):
            problems.append(f"{path}: is not a regular file (a FIFO, device or socket); remove it")
    return problems


def _check_nothing_committed(report: Report, model: dict[str, Any]) -> None:
    """Uncommitted weights stay out of the repository: a weights-like file beside model.yaml is an error."""
    from subclassbench.encoders.hub import WEIGHT_SUFFIXES

    seed_files = {e["weights"]["file"] for e in model["encoder"].get("seeds", [])}
    for path in sorted(report.folder.iterdir()):
        if path.suffix in WEIGHT_SUFFIXES and path.name not in seed_files:
            report.error(
                str(path), "model.yaml names its weights by source (encoder.weights.source): do not commit them"
            )


_ABSENT = object()
# Constructor arguments a loader sets itself (timm's random-init models: zero_init_last=False), not model.yaml's.
LOADER_ARGS = frozenset({"zero_init_last"})


def _options_problem(model: dict[str, Any], encoder: EncoderRecord) -> str | None:
    """Whether a result's constructor arguments and preprocessing overrides are model.yaml's; None when so."""
    from subclassbench.encoders.base import ENCODER_SOURCES

    wanted = model["encoder"].get("model_args") or {}
    recorded = encoder.get("arch_kwargs") or {}
    # A packaged tag's model card adds its own switches; any other extra argument is not model.yaml's.
    cards = encoder.get("source") in ENCODER_SOURCES and ENCODER_SOURCES.get(encoder["source"]).model_cards
    extra = set(recorded) - set(wanted) - LOADER_ARGS
    if any(recorded.get(k, _ABSENT) != v for k, v in wanted.items()) or (not cards and extra):
        return f"was computed with constructor arguments {recorded}, not model.yaml's encoder.model_args {wanted}"
    wanted = model["encoder"].get("preprocess") or {}
    recorded = encoder.get("preprocessing_overrides") or {}
    ours, theirs = resolved_preprocess(wanted, encoder), resolved_preprocess(recorded, encoder)
    if ours is None or theirs is None or ours != theirs:
        return f"was computed with preprocessing overrides {recorded}, not model.yaml's encoder.preprocess {wanted}"
    return None


def resolved_preprocess(fields: dict[str, Any], encoder: EncoderRecord) -> dict[str, Any] | None:
    """``--preprocess`` fields as the encoder of a result resolves them (``mean: 0.5`` → one per channel);
    None when they do not apply to it."""
    from subclassbench.encoders.preprocessing import Preprocessing

    if not fields:
        return {}
    try:
        applied = Preprocessing.from_dict(encoder["preprocessing"]).with_overrides(fields)
    except (SubclassbenchError, KeyError, TypeError, ValueError):
        return None
    values = {key: getattr(applied, key) for key in sorted(fields)}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


def _check_result(report: Report, model: dict[str, Any], result: Result, path: Path, tasks: dict[str, Task]) -> None:
    """One result file against its model.yaml, its task and the current protocol."""
    from subclassbench.encoders.base import ENCODER_SOURCES, PACKAGED_PREFIX
    from subclassbench.tasks.task import load_task

    task_name = result.task_name
    named_task, seed = parse_result_stem(path.stem)
    seeds = {e["seed"] for e in model["encoder"].get("seeds", [])}
    if named_task != task_name:
        report.error(str(path), f"holds task '{task_name}'; name the file {result_stem(task_name, seed)}.json")
        return
    if path.stem != result_stem(task_name, seed):  # seed-01 beside seed-1 would count one seed twice
        report.error(str(path), f"is not named canonically; name it {result_stem(task_name, seed)}.json")
        return
    if seed is not None and seed not in seeds:
        report.error(str(path), f"is named for seed {seed}, which model.yaml's encoder.seeds does not list")
        return
    try:
        if task_name not in tasks:  # by registered name: a YAML file in the working directory is not a task here
            tasks[task_name] = load_task(task_name, by_name_only=True)
        task = tasks[task_name]
    except SubclassbenchError:
        report.error(str(path), f"result for unknown task '{task_name}'; use a task from `subclassbench tasks`")
        return
    if result.limited:
        report.error(str(path), "was computed on a --limit subset (a quick try); re-run `subclassbench submit`")
        return
    if not intervals.current(result):  # its rank would pair replicates centred two ways
        report.error(str(path), f"has intervals from an earlier bootstrap method; run `subclassbench intervals {path}`")
        return
    encoder, declared = result.encoder, declared_weights(model, seed)
    if encoder["spec"] != model["encoder"]["spec"]:
        report.error(str(path), f"encoder '{encoder['spec']}' differs from model.yaml's '{model['encoder']['spec']}'")
    if declared is not None and result.weights_sha256 != declared["sha256"]:
        report.error(str(path), "was computed with other weights than model.yaml declares (sha256 differs)")
    elif (
        declared is not None
        and is_external(declared)
        and (named := (encoder.get("weights") or {}).get("path")) != (expected := source_label(declared["source"]))
    ):
        report.error(
            str(path),
            f"names its weights {named!r}, not model.yaml's source {expected!r}; re-run `subclassbench submit`",
        )
    if (problem := _options_problem(model, encoder)) is not None:
        report.error(str(path), f"{problem}; re-run `subclassbench submit`")
    random_init = bool(model["encoder"].get("random_init", False))
    if ENCODER_SOURCES.get(encoder["source"]).random_init and random_init == bool(encoder["pretrained"]):
        state = "random-init" if random_init else "pretrained"
        report.error(str(path), f"model.yaml declares a {state} encoder but the result's encoder.pretrained disagrees")
    if _hub_entry(result) != model["encoder"].get("hub"):
        report.error(str(path), "hub weights differ from model.yaml's encoder.hub (repository, commit or sha256)")
    # Weights packaged with subclassbench (not a package:NAME==VERSION source, which model.yaml declares).
    packaged = str((encoder.get("weights") or {}).get("path", "")).startswith(f"{PACKAGED_PREFIX}subclassbench/")
    if declared is None and encoder.get("weights") and not packaged and _hub_entry(result) is None:
        report.error(str(path), "was computed with a weights file that model.yaml does not declare")
    reasons = []
    if result.task["definition_fingerprint"] != task.definition_fingerprint:
        reasons.append(f"task {task_name} changed (now v{task.version})")
    if result.protocol_fingerprint != protocol_fingerprint():
        reasons.append("protocol changed")
    uncommitted = "clusterability" in result.metrics and "committed_layer" not in result.summary
    if reasons:
        report.stale_reasons[path] = f"({'; '.join(reasons)}); re-run `subclassbench submit`"
    elif task.validation_split and uncommitted:
        split = task.validation_split
        report.error(str(path), f"has no committed layer; re-run with --data holding the '{split}' split too")
        return
    report.results.append(result)
    report.seed_of[path] = seed


def validate_tree(root: Path) -> list[Report]:
    """``root`` is one submission folder (has model.yaml) or a folder of them."""
    if not root.is_dir():
        raise SubclassbenchError(f"{root} is not a folder; pass submissions/ or submissions/<name>")
    if (root / MODEL_FILE).exists():
        return [validate_submission(root)]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    tasks: dict[str, Task] = {}
    reports = [validate_submission(p, tasks) for p in folders]
    _refuse_duplicates(reports)
    return reports


def model_identity(result: Result) -> str:
    """What makes two results the same model: spec, weights (by sha256), constructor arguments, preprocessing."""
    encoder = result.encoder
    return canonical_json(
        {
            "spec": encoder["spec"],
            "weights": result.weights_sha256,
            "pretrained": encoder.get("pretrained"),
            "arch_kwargs": encoder.get("arch_kwargs") or {},
            "preprocessing": encoder.get("preprocessing"),
        }
    )


def _refuse_duplicates(reports: list[Report]) -> None:
    """One model, one row: the same model submitted under a second name on a task it already has is refused
    (the untrained network shown on a task and on its shuffled control is one model on two tasks: allowed)."""
    owner: dict[tuple[str, str], str] = {}
    for report in reports:
        for result in report.results:
            if report.seed(result) is not None:
                continue
            key = (result.task_name, model_identity(result))
            first = owner.setdefault(key, report.folder.name)
            if first != report.folder.name:
                report.error(
                    str(result.path),
                    f"is the same model as submissions/{first} on {result.task_name} (same spec, weights and "
                    "options): one model ranks once; remove one of the two",
                )


# --------------------------------------------------------------------------- submit


def new_model_file(
    name: str,
    spec: str,
    labels: str,
    training_data: str,
    license: str,
    citation: str,
    label_task: str | None = None,
    description: str | None = None,
    data_notes: dict[str, str] | None = None,
    label_set: str | None = None,
) -> dict[str, Any]:
    if labels not in LABELS:
        raise SubclassbenchError(f"unknown label granularity '{labels}'; use one of {', '.join(LABELS)}")
    model: dict[str, Any] = {
        "name": name,
        "description": description or spec,
        "encoder": {"spec": spec, "weights": None},
        "license": license,
        "citation": citation,
        "training": {"data": training_data, "labels": labels},
        "evaluation_data": dict(data_notes or {}),
    }
    if label_task:
        model["training"]["label_task"] = label_task
    if label_set:
        if label_set not in LABEL_SETS:
            raise SubclassbenchError(f"unknown label set '{label_set}'; use one of {', '.join(LABEL_SETS)}")
        model["training"]["label_set"] = label_set
    return model


def store_weights(folder: Path, source: Path, name: str = WEIGHTS_FILE) -> dict[str, str]:
    """Copy (or convert to) ``name`` (``weights.safetensors``) in the submission; returns the model.yaml entry."""
    from safetensors.torch import save_file

    from subclassbench.encoders.weights import read_state_dict

    target = folder / name
    with atomic_path(target) as tmp:
        if source.suffix == ".safetensors":
            shutil.copyfile(source, tmp)
        else:  # a torch checkpoint: store its tensors as safetensors, which loads without pickle
            state, _ = read_state_dict(source)
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    return {"file": name, "sha256": sha256_file(target), "converted_from": source.name}


def write_model_file(folder: Path, model: dict[str, Any]) -> None:
    problem = first_error(model, "submission")
    if problem:
        raise SubclassbenchError(f"model.yaml would be invalid: {problem}")
    atomic_write(folder / MODEL_FILE, yaml.safe_dump(model, sort_keys=False, allow_unicode=True, width=100))


# --------------------------------------------------------------------------- verify


@dataclass
class Difference:
    layer: str
    metric: str
    submitted: float
    rerun: float

    def __str__(self) -> str:
        tol = TOLERANCES[self.metric]
        return f"{self.layer} {self.metric}: submitted {self.submitted:.4f}, re-run {self.rerun:.4f} (tolerance {tol})"


# Summary values compared by verify, with the per-layer metric whose tolerance applies to them.
SUMMARY_TOLERANCES: dict[str, str] = {
    "best_ami": "ami",
    "best_within_superclass_acc": "within_superclass_acc",
    "last_ami": "ami",
    "last_within_superclass_acc": "within_superclass_acc",
    "last_reconstruction_acc": "reconstruction_acc",
    "committed_ami": "ami",
    "committed_within_superclass_acc": "within_superclass_acc",
    "committed_reconstruction_acc": "reconstruction_acc",
    "committed_gap": "ami",
    "ood_retained": "ood_retained",
}
TOLERANCES["ood_retained"] = 2.0  # percentage points: a ratio of two probe accuracies (each within 0.02)


def _outside(was: Any, now: Any, tolerance: float) -> bool:
    """True unless both are numbers within ``tolerance`` (a NaN or a missing value is always outside)."""
    if not isinstance(was, int | float) or not isinstance(now, int | float):
        differs: bool = was != now
        return differs
    return not abs(float(was) - float(now)) <= tolerance


def compare_results(submitted: Result, rerun: Result) -> list[Difference | str]:
    """Metrics that differ by more than their tolerance, layers that do not line up, a moved committed layer."""
    out: list[Difference | str] = []
    old = {layer["name"]: layer for layer in submitted.layers}
    if list(old) != rerun.layer_names:
        out.append(f"layers differ: submitted {list(old)}, re-run {rerun.layer_names}")
    # Not the tunnel layer: it may flip between near-ties, and its accuracy is compared within tolerance.
    for key in ("committed_layer", "best_layer"):
        if submitted.summary.get(key) != rerun.summary.get(key):
            out.append(f"{key}: submitted {submitted.summary.get(key)}, re-run {rerun.summary.get(key)}")
    for key, metric in SUMMARY_TOLERANCES.items():
        was, now = submitted.summary.get(key), rerun.summary.get(key)
        if (was is not None or now is not None) and _outside(was, now, TOLERANCES[metric]):
            out.append(f"summary.{key}: submitted {was}, re-run {now} (tolerance {TOLERANCES[metric]})")
    families: tuple[Literal["clusterability", "transfer"], ...] = ("clusterability", "transfer")
    for layer in rerun.layers:
        before = old.get(layer["name"])
        if before is None:
            continue
        for family in families:
            for metric, value in layer.get(family, {}).items():
                if metric not in TOLERANCES or not isinstance(value, int | float):
                    continue
                was = before.get(family, {}).get(metric)
                if _outside(was, value, TOLERANCES[metric]):
                    submitted_value = math.nan if not isinstance(was, int | float) else float(was)
                    out.append(Difference(layer["name"], metric, submitted_value, float(value)))
    return out


# --------------------------------------------------------------------------- submit (create or update)


def check_submission_name(name: str) -> None:
    """A submission name is one folder under submissions/: no separators, no ``..``, nothing hidden."""
    check_name(name, "submission name")


@dataclass
class SubmitRequest:
    """Everything ``subclassbench submit`` needs; metadata is required for a new submission only."""

    name: str
    model: str
    tasks: list[str]
    weights: Path | None = None
    data: str | None = None
    labels: str | None = None
    label_task: str | None = None
    saw_evaluation_split: bool | None = None  # model.yaml training.saw_evaluation_split (None: not declared)
    label_set: str | None = None  # a dataset's labels no task describes (imagenet-1k): its classes were seen
    channels_last: bool = False  # NHWC forward pass (recorded in each result's run.compute; features alike)
    training_data: str | None = None
    license: str | None = None
    citation: str | None = None
    description: str | None = None
    data_note: str | None = None
    random_init: bool = False
    metrics: list[str] | None = None
    submissions: Path = Path("submissions")
    batch_size: int = 256
    progress: bool = True
    seed: int | None = None  # add these weights as another training seed of an existing submission
    # Weights that are not committed: ``weights`` is evaluated, never copied, and named by sha256 and this
    # source (``shared:PATH``, ``hub:REPO@REVISION:PATH``, ``package:NAME==VERSION:PATH``).
    weights_source: str | None = None
    converted_by: str | None = None  # the repository script that made the evaluated file (package sources)
    model_args: dict[str, Any] | None = None  # constructor arguments (``--model-arg``), recorded in model.yaml
    preprocess: dict[str, Any] | None = None  # preprocessing fields (``--preprocess``), recorded in model.yaml

    @property
    def folder(self) -> Path:
        return self.submissions / self.name

    @property
    def repository(self) -> Path:
        return repository_of(self.folder)


def _resolve_weights(weights: Path | None) -> Path | None:
    if weights is None:
        return None
    from subclassbench.encoders.builtin import resolve_trained_weights

    if not weights.exists():
        raise SubclassbenchError(f"weights {weights} do not exist; pass a .safetensors or torch checkpoint file")
    resolved, card = resolve_trained_weights(weights)
    if card and card.get("arch_kwargs"):
        raise SubclassbenchError(
            f"{resolved} needs architecture switches {card['arch_kwargs']}; submit it as a packaged builtin tag"
        )
    return resolved


def _model_entry(request: SubmitRequest) -> dict[str, Any]:
    """The existing model.yaml (checked against the request) or a new one from the request's metadata."""
    folder = request.folder
    if (folder / MODEL_FILE).exists():
        entry = read_model_file(folder)
        if entry["encoder"]["spec"] != request.model:
            raise SubclassbenchError(
                f"{folder} is a submission of {entry['encoder']['spec']}, not {request.model}; choose another --name"
            )
        if request.random_init != bool(entry["encoder"].get("random_init", False)):
            raise SubclassbenchError(f"--random-init must match {folder}'s model.yaml (encoder.random_init)")
        _model_options(request, entry, existing=True)
        if request.saw_evaluation_split is not None:  # a declaration may be added or corrected on update
            entry["training"]["saw_evaluation_split"] = request.saw_evaluation_split
        return entry
    card = card_defaults(request)  # a `train` folder's card says what the network was trained on
    for option, key in (("--labels", "labels"), ("--label-task", "label_task")):
        given = getattr(request, key)
        if given is not None and key in card and given != card[key]:
            raise SubclassbenchError(
                f"{option} {given} contradicts {request.weights}'s card (trained with {key.replace('_', ' ')} "
                f"{card[key]}); leave {option} out to take the card's"
            )
    labels = request.labels or card.get("labels")
    label_task = request.label_task or card.get("label_task")
    training_data = request.training_data or card.get("training_data")
    fields = {
        "labels": labels,
        "training-data": training_data,
        "license": request.license,
        "citation": request.citation,
    }
    missing = [f"--{flag}" for flag, value in fields.items() if not value]
    if missing:
        raise SubclassbenchError(f"a new submission needs {', '.join(missing)} (see docs/submitting.md)")
    entry = new_model_file(
        request.name,
        request.model,
        str(labels),
        str(training_data),
        str(request.license),
        str(request.citation),
        label_task,
        request.description,
        label_set=request.label_set,
    )
    if request.random_init:
        entry["encoder"]["random_init"] = True
    if request.saw_evaluation_split is not None:
        entry["training"]["saw_evaluation_split"] = request.saw_evaluation_split
    _model_options(request, entry, existing=False)
    return entry


CARD_LABELS = {"superclass": "superclass", "subclass": "fine"}  # a run card's labels → model.yaml's


def _saw_evaluation_split(training: dict[str, Any]) -> bool | None:
    """model.yaml's declaration of whether training held the evaluation images (None: not declared)."""
    declared = training.get("saw_evaluation_split")
    return declared if isinstance(declared, bool) else None


def _head_task(training: dict[str, Any]) -> str | None:
    """The task whose superclasses the encoder's head predicts, by model.yaml: superclass labels of label_task."""
    task = training.get("label_task")
    return str(task) if training.get("labels") == "superclass" and isinstance(task, str) else None


def card_defaults(request: SubmitRequest) -> dict[str, str]:
    """What a `subclassbench train` folder passed as ``--weights`` says about its training: labels, label task and
    training data, for the fields the submitter left out ({} for any other weights)."""
    from subclassbench.encoders.builtin import resolve_trained_weights

    if request.weights is None or request.seed is not None or not request.weights.exists():
        return {}
    _, card = resolve_trained_weights(request.weights)
    if not card:
        return {}
    out: dict[str, str] = {}
    labels, task, split = CARD_LABELS.get(str(card.get("labels"))), card.get("task"), card.get("train_split")
    if labels is not None:
        out["labels"] = labels
    if isinstance(task, str) and task:
        out["label_task"] = task
        if isinstance(split, dict) and isinstance(split.get("n_samples"), int) and isinstance(split.get("name"), str):
            described = card.get("labels_description")
            out["training_data"] = (
                f"{task} {split['name']} split ({split['n_samples']:,} images)"
                + (f", {described}" if isinstance(described, str) else "")
                + f"; {card.get('epochs', '?')} epochs, seed {card.get('seed', '?')} (subclassbench train)"
            )
    return out


def _model_options(request: SubmitRequest, entry: dict[str, Any], existing: bool) -> None:
    """``--model-arg`` and ``--preprocess`` go into a new model.yaml; an update re-uses the recorded ones, and
    a different value is refused (one submission evaluates one model)."""
    given = {"model_args": request.model_args or None, "preprocess": normal_preprocess(request.preprocess)}
    for key, option in (("model_args", "--model-arg"), ("preprocess", "--preprocess")):
        value, recorded = given[key], entry["encoder"].get(key)
        if existing and value is not None and value != recorded:
            raise SubclassbenchError(
                f"{option} {value} differs from {request.folder}'s model.yaml (encoder.{key}: {recorded or 'none'}); "
                f"leave {option} out to re-use model.yaml's, or choose another --name"
            )
        if not existing and value is not None:
            entry["encoder"][key] = value


def normal_preprocess(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """``--preprocess`` values as model.yaml records them: comma-separated numbers become a list."""
    from subclassbench.encoders.preprocessing import OVERRIDABLE

    if not fields:
        return None
    unknown = sorted(set(fields) - set(OVERRIDABLE))
    if unknown:
        raise SubclassbenchError(
            f"unknown preprocessing field '{unknown[0]}'; use {', '.join(OVERRIDABLE)} (e.g. --preprocess mean=0.5)"
        )
    out: dict[str, Any] = {}
    for key, value in fields.items():
        out[key] = value
        if isinstance(value, str) and "," in value:
            try:
                numbers = [float(item) for item in value.split(",")]
            except ValueError:
                continue  # not numbers: the encoder's check says what it takes
            out[key] = [int(n) if key == "input_size" and n.is_integer() else n for n in numbers]
    return out


def _weights_source(request: SubmitRequest) -> dict[str, str] | None:
    """``--weights-source`` parsed and checked before any work, or None."""
    if request.weights_source is None:
        if request.converted_by is not None:
            raise SubclassbenchError("--converted-by goes with --weights-source package:NAME==VERSION:PATH")
        return None
    if request.seed is not None:
        raise SubclassbenchError(
            "--weights-source names a submission's first weights; a further seed (--seed) is a committed file"
        )
    return parse_source(request.weights_source, request.converted_by)


EVALUATED_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def _external_weights(request: SubmitRequest, entry: dict[str, Any], source: dict[str, str] | None) -> Path:
    """The uncommitted weights file to evaluate (``--weights``, or found by :func:`locate`); a new submission
    records its sha256 and source in ``entry``, an existing one must have those exact bytes."""
    folder, declared = request.folder, entry["encoder"]["weights"]
    if declared is not None and not is_external(declared):
        raise SubclassbenchError(
            f"{folder} commits its weights ({declared['file']}); --weights-source is for weights that are not "
            "committed: choose another --name"
        )
    if declared is not None:
        if source is not None and source != declared["source"]:
            raise SubclassbenchError(
                f"--weights-source {source_label(source)} differs from {folder}'s model.yaml "
                f"({source_label(declared['source'])}); leave it out, or choose another --name"
            )
        source = declared["source"]
    assert source is not None
    file, sha256 = locate(source, None if declared is None else declared["sha256"], request.repository, request.weights)
    if file.suffix not in EVALUATED_SUFFIXES:
        raise SubclassbenchError(
            f"{file}: weights that are not committed are evaluated as they are; pass a .safetensors file or a torch "
            f"checkpoint ({', '.join(EVALUATED_SUFFIXES[1:])})"
        )
    if declared is None:
        entry["encoder"]["weights"] = {"sha256": sha256, "source": dict(source)}
    return file


def _add_seed(request: SubmitRequest, entry: dict[str, Any], weights: Path | None, stage: Path) -> Path:
    """Stage another training seed's weights and list it in ``entry`` (an existing submission's model.yaml)."""
    seed = request.seed
    assert seed is not None
    if weights is None or entry["encoder"].get("weights") is None:
        raise SubclassbenchError("--seed needs --weights, and a submission whose first seed has a weights file")
    if seed == training_seed(entry):
        raise SubclassbenchError(f"seed {seed} is the submission's first seed (training.seed); choose another --seed")
    stored = store_weights(stage, weights, seed_weights_file(seed))
    seeds = entry["encoder"].setdefault("seeds", [])
    known = next((e for e in seeds if e["seed"] == seed), None)
    if known is not None and known["weights"]["sha256"] != stored["sha256"]:
        raise SubclassbenchError(f"seed {seed} of {request.folder} has other weights; remove it from model.yaml first")
    if known is None:
        seeds.append({"seed": seed, "weights": stored})
        seeds.sort(key=lambda e: e["seed"])
    return stage / seed_weights_file(seed)


def submit(request: SubmitRequest) -> Report:
    """Evaluate the request's tasks and create or update the submission folder; returns its validation report.

    Everything is computed in a staging folder beside the target first; only
    then are the weights, the results and model.yaml (last) moved into place,
    so a failure or a kill leaves the submission as it was.
    """
    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.tasks.task import load_task

    check_submission_name(request.name)
    for task_name in request.tasks:
        check_name(task_name, "--task name (it names the result file)")
        load_task(task_name, by_name_only=True)  # submissions are on registered tasks, never a local file
    source = _weights_source(request)
    if request.weights is not None and not request.weights.exists():  # before anything is created
        raise SubclassbenchError(f"weights {request.weights} do not exist; pass a .safetensors or torch checkpoint")
    folder = request.folder
    request.submissions.mkdir(parents=True, exist_ok=True)  # staging beside the target keeps renames atomic
    with locked(folder), tempfile.TemporaryDirectory(prefix=".staging-", dir=request.submissions) as tmp:
        if request.seed is not None and not (folder / MODEL_FILE).exists():
            raise SubclassbenchError(f"--seed adds a seed to an existing submission; submit {request.name} first")
        entry = _model_entry(request)  # read under the lock: two submits never lose each other's updates
        stage = Path(tmp)
        weights_for_run: Path | None = None
        weights_file = WEIGHTS_FILE if request.seed is None else seed_weights_file(request.seed)
        stored_at = f"{request.submissions.as_posix()}/{request.name}"
        # Uncommitted weights are read where they are; any other --weights file is staged to be committed.
        external = request.seed is None and (source is not None or is_external(entry["encoder"]["weights"]))
        weights = None if external else _resolve_weights(request.weights)
        if request.seed is not None:
            weights_for_run = _add_seed(request, entry, weights, stage)
        elif external:
            weights_for_run = _external_weights(request, entry, source)
        elif weights is not None:
            stored = store_weights(stage, weights)
            declared = entry["encoder"]["weights"]
            if declared is not None and declared["sha256"] != stored["sha256"]:
                raise SubclassbenchError(f"{weights} differs from the weights of {folder}; choose another --name")
            entry["encoder"]["weights"] = declared or stored
            weights_for_run = stage / WEIGHTS_FILE
        elif entry["encoder"]["weights"] is not None:
            weights_for_run = folder / entry["encoder"]["weights"]["file"]
        try:  # every rule model.yaml must meet, before the work and not after it
            check_model(entry, folder / MODEL_FILE, request.name)
        except SubclassbenchError as exc:
            raise SubclassbenchError(f"model.yaml would be invalid, so nothing was evaluated: {exc}") from None
        # A portable name for the weights: where they live in the repository, or their source.
        declared = entry["encoder"]["weights"]
        if weights_for_run is None:
            weights_label = None
        elif request.seed is None and is_external(declared):
            weights_label = source_label(declared["source"])
        else:
            weights_label = f"{stored_at}/{weights_file}"
        results: dict[str, Result] = {}
        for i, task_name in enumerate(request.tasks):
            announce(
                f"{counted('submit', i, len(request.tasks))}: evaluating {request.model} on {task_name}",
                request.progress,
            )
            result = evaluate(
                EvaluationRequest(
                    model=request.model,
                    task=task_name,
                    weights=None if weights_for_run is None else str(weights_for_run),
                    data=request.data,
                    batch_size=request.batch_size,
                    channels_last=request.channels_last,
                    pretrained=not (request.random_init or entry["encoder"].get("random_init", False)),
                    progress=request.progress,
                    metrics=request.metrics,
                    weights_label=weights_label,
                    saw_evaluation_split=_saw_evaluation_split(entry["training"]),
                    head_task=_head_task(entry["training"]),
                    model_args=entry["encoder"].get("model_args"),
                    preprocess=entry["encoder"].get("preprocess"),
                )
            )
            _record_hub(entry, result)
            results[result.task_name] = result
            default_note = result.task["data_source"] if request.data is None else f"--data {request.data}"
            # keep a recorded note on update
            note = request.data_note or entry["evaluation_data"].get(result.task_name) or default_note
            entry["evaluation_data"][result.task_name] = note
        staged, written = _stage_submission(request, entry, results, stage, weights is not None)
        announce(f"submit: validating {folder}", request.progress)
        report = validate_submission(staged)
        if report.errors:  # the staged folder is what the real one would become: nothing moves if it is invalid
            problem = report.errors[0].replace(str(staged), str(folder))
            raise SubclassbenchError(f"the submission would be invalid, so nothing was written: {problem}")
        for relative in written:  # weights, per-sample files and results, then model.yaml, which makes them count
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            (staged / relative).replace(target)
    return validate_submission(folder)


def _stage_submission(
    request: SubmitRequest, entry: dict[str, Any], results: dict[str, Result], stage: Path, new_weights: bool
) -> tuple[Path, list[str]]:
    """The submission folder as it would become, built under ``stage``: a copy of the existing one with this
    submit's files added. Returns it and the files to move into place, in order (model.yaml last)."""
    folder, weights_file = request.folder, WEIGHTS_FILE if request.seed is None else seed_weights_file(request.seed)
    staged = stage / "submission" / request.name
    if folder.is_dir():
        shutil.copytree(folder, staged, symlinks=True)
    staged.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if new_weights and not (folder / weights_file).exists():
        (stage / weights_file).replace(staged / weights_file)
        written.append(weights_file)
    for task_name, result in results.items():
        relative = f"{RESULTS_DIR}/{result_stem(task_name, request.seed)}.json"
        path = result.write(staged / relative)
        if (path.parent / sidecar_name(path)).exists():
            written.append(f"{RESULTS_DIR}/{sidecar_name(path)}")
        written.append(relative)
    write_model_file(staged, entry)
    written.append(MODEL_FILE)
    return staged, written


def _hub_entry(result: Result) -> dict[str, Any] | None:
    hub = (result.encoder.get("weights") or {}).get("hub")
    return None if hub is None else {"repo": hub["repo"], "revision": hub["revision"], "files": hub["files"]}


def _record_hub(entry: dict[str, Any], result: Result) -> None:
    """Hub weights go into model.yaml with their commit and hashes; the spec must pin that commit, so anyone
    re-running the submission reads the same bytes even after the repository's main branch moves on."""
    hub = _hub_entry(result)
    if hub is None:
        return
    import dataclasses

    from subclassbench.encoders.base import EncoderSpec

    parsed = EncoderSpec.parse(result.encoder["spec"])
    if parsed.revision != hub["revision"]:
        pinned = dataclasses.replace(parsed, revision=hub["revision"])
        raise SubclassbenchError(f"{parsed} loads hub weights; a submission pins their commit: use --model {pinned}")
    entry["encoder"]["hub"] = hub


# --------------------------------------------------------------------------- verify (re-run and compare)


@dataclass
class Verification:
    """The outcome of re-running one result: ``ok``, ``fail`` or ``skipped``, with the reasons."""

    task: str
    status: str
    detail: str
    differences: list[Difference | str] = field(default_factory=list)


def _rerun_request(
    entry: dict[str, Any], submitted: Result, file: Path | None, source: str, progress: bool, cache: str
) -> EvaluationRequest:
    """The evaluation that re-runs one of a submission's results: its model, weights, split and metrics."""
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.tasks.task import load_task

    task = load_task(submitted.task_name)
    return EvaluationRequest(
        model=entry["encoder"]["spec"],
        task=submitted.task_name,
        weights=None if file is None else str(file),
        data=source if task.needs_data_path else None,
        split=submitted.task["split"],
        pretrained=not entry["encoder"].get("random_init", False),
        progress=progress,
        metrics=submitted.metrics,
        cache=cache,
        # The submission's memory layout: the same kernels, so the same last bits.
        channels_last=bool((submitted.get("run") or {}).get("compute", {}).get("channels_last", False)),
        model_args=entry["encoder"].get("model_args"),
        preprocess=entry["encoder"].get("preprocess"),
        weights_label=(submitted.encoder.get("weights") or {}).get("path"),
        saw_evaluation_split=_saw_evaluation_split(entry["training"]),
        head_task=_head_task(entry["training"]),
    )


def rerun(
    folder: Path,
    data: str | None = None,
    tasks: list[str] | None = None,
    progress: bool = False,
    weights: Path | None = None,
) -> list[Path]:
    """Re-run each of a submission's results under the current protocol and write it in place (the result and
    its per-sample file together): what a protocol change asks of every shipped result. Features come from the
    cache when it holds them (they do not depend on the protocol's scoring); returns the files written."""
    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.tasks.task import load_task

    report = validate_submission(folder)
    if report.errors:
        raise SubclassbenchError(f"{report.errors[0]} (run `subclassbench validate {folder}`)")
    assert report.model is not None
    entry, declared = report.model, declared_weights(report.model)
    written: list[Path] = []
    for submitted in sorted(report.results, key=lambda r: (r.task_name, str(r.path))):
        if tasks and submitted.task_name not in tasks:
            continue
        seed = report.seed(submitted)
        if seed is None and is_external(declared):
            assert declared is not None
            file: Path | None = locate(declared["source"], declared["sha256"], repository_of(folder), weights)[0]
        else:
            file = weights_path(folder, entry, seed)
        source = data or submitted.task["data_source"]
        if load_task(submitted.task_name).needs_data_path and not Path(source).exists():
            raise SubclassbenchError(f"{submitted.path}: its data is not at {source}; pass --data")
        assert submitted.path is not None
        announce(f"rerun: {submitted.path}", progress)
        result = evaluate(_rerun_request(entry, submitted, file, source, progress, cache="use"))
        if result.task["fingerprint"] != submitted.task["fingerprint"]:
            raise SubclassbenchError(f"{submitted.path}: the data differs from the submission's (task fingerprint)")
        result.write(submitted.path)
        written.append(submitted.path)
    return written


def verify(
    folder: Path,
    data: str | None = None,
    tasks: list[str] | None = None,
    progress: bool = False,
    shipped_data_only: bool = False,
    on_outcome: Callable[[Verification], None] | None = None,
    weights: Path | None = None,
) -> list[Verification]:
    """Re-run each of a submission's results without the feature cache and compare within tolerance.

    ``shipped_data_only`` verifies only results on tasks whose data ships with
    subclassbench (CI's setting: no downloads, bounded time); others are skipped.
    ``on_outcome`` is called with each outcome as soon as it is known.
    ``weights`` is the file of weights that model.yaml names by sha256 and source (not committed);
    without it they are looked for (:func:`subclassbench.leaderboard.external.locate`) when a result is
    first re-run, and checked against their sha256 before they load.
    """
    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.tasks.task import load_task

    report = validate_submission(folder)
    if report.errors:
        raise SubclassbenchError(f"{report.errors[0]} (run `subclassbench validate {folder}`)")
    assert report.model is not None
    entry, wanted = report.model, set(tasks or [])
    declared = declared_weights(entry)
    if weights is not None and not is_external(declared):
        raise SubclassbenchError(
            f"--weights is for weights that model.yaml names by source; {folder} "
            + ("commits its weights file" if declared is not None else "declares no weights file")
            + ": drop --weights"
        )
    found: list[Path] = []  # the uncommitted weights, once found

    def weights_file(seed: int | None) -> Path | None:
        if seed is not None or not is_external(declared):
            return weights_path(folder, entry, seed)
        if not found:
            assert declared is not None
            file, _ = locate(declared["source"], declared["sha256"], repository_of(folder), weights)
            found.append(file)
        return found[0]

    ordered = sorted(report.results, key=lambda r: (r.task_name, str(r.path)))
    chosen = [r for r in ordered if not wanted or r.task_name in wanted]
    out: list[Verification] = []

    def done(outcome: Verification) -> None:
        out.append(outcome)
        if on_outcome is not None:  # as soon as it is known: a long verify reports each result when it is checked
            on_outcome(outcome)

    for submitted in chosen:
        name = submitted.task_name
        label = submitted.path.stem if submitted.path else name  # <task> or <task>.seed-<k>
        task = load_task(name)
        source = data or submitted.task["data_source"]
        if task.needs_data_path and shipped_data_only:
            done(Verification(label, "skipped", "its data does not ship with subclassbench"))
            continue
        if task.needs_data_path and not Path(source).exists():
            done(Verification(label, "skipped", "needs its data; pass --data"))
            continue
        file = weights_file(report.seed(submitted))
        announce(
            f"{counted('verify', len(out), len(chosen))}: {label}: re-running {entry['encoder']['spec']} "
            "without the feature cache",
            progress,
        )
        # a verification recomputes features, never reads them back
        rerun = evaluate(_rerun_request(entry, submitted, file, source, progress, cache="off"))
        if rerun.task["fingerprint"] != submitted.task["fingerprint"]:
            done(Verification(label, "fail", "the data differs from the submission's (task fingerprint)"))
            continue
        if is_external(declared) and rerun.weights_sha256 != submitted.weights_sha256:  # changed after the check
            done(Verification(label, "fail", "the re-run read other weights than the submission's (sha256)"))
            continue
        differences = compare_results(submitted, rerun)
        if differences:
            detail = f"{len(differences)} difference(s) outside tolerance"
            done(Verification(label, "fail", detail, differences))
        else:
            done(Verification(label, "ok", f"{len(rerun.layers)} layers within tolerance"))
    return out
