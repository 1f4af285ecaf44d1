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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from subclassbench.errors import SubclassbenchError, first_line
from subclassbench.hashing import sha256_file
from subclassbench.protocol import protocol_fingerprint
from subclassbench.results import read_result, validate_result
from subclassbench.schemas import first_error

MODEL_FILE = "model.yaml"
RESULTS_DIR = "results"
WEIGHTS_FILE = "weights.safetensors"
LABELS = ("fine", "superclass", "self-supervised", "text-supervised", "none")

# Re-running a submission must land within these absolute differences; see docs/submitting.md.
TOLERANCES: dict[str, float] = {
    "ami": 0.01,
    "ari": 0.01,
    "nmi": 0.01,
    "purity": 0.01,
    "matched_acc": 0.01,
    "fine_acc": 0.01,
    "id_acc": 0.02,
    "ood_shift_acc": 0.02,
    "ood_refit_acc": 0.02,
}


@dataclass
class Report:
    """Problems (errors) and stale results found in one submission folder."""

    folder: Path
    errors: list[str] = field(default_factory=list)
    stale_reasons: dict[Path, str] = field(default_factory=dict)  # result file → why it is stale
    results: list[Path] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    @property
    def stale(self) -> list[str]:
        return [f"{path}: stale {reason}" for path, reason in self.stale_reasons.items()]


def read_model_file(folder: Path) -> dict[str, Any]:
    path = folder / MODEL_FILE
    if not path.is_file():
        raise SubclassbenchError(f"{path} is missing; run `subclassbench submit` or copy an existing submission")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SubclassbenchError(f"{path}: cannot parse YAML: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise SubclassbenchError(f"{path}: must be a mapping of fields (see docs/submitting.md)")
    problem = first_error(raw, "submission")
    if problem:
        raise SubclassbenchError(f"{path}: invalid model file {problem}")
    if raw["name"] != folder.name:
        raise SubclassbenchError(f"{path}: name '{raw['name']}' must equal the folder name '{folder.name}'")
    training = raw["training"]
    if training["labels"] == "superclass" and not training.get("label_task"):
        raise SubclassbenchError(f"{path}: training.labels is superclass, so training.label_task must name the task")
    return raw


def weights_path(folder: Path, model: dict[str, Any]) -> Path | None:
    weights = model["encoder"].get("weights")
    return None if weights is None else folder / weights["file"]


def validate_submission(folder: Path) -> Report:
    """Every problem in one submission, one line each; stale results are reported, not failed."""
    from subclassbench.tasks import load_task

    report = Report(folder)
    try:
        model = read_model_file(folder)
    except SubclassbenchError as exc:
        report.errors.append(str(exc))
        return report
    declared = model["encoder"].get("weights")
    if declared is not None:
        path = weights_path(folder, model)
        assert path is not None
        if not path.is_file():
            report.error(str(path), "weights file is missing; commit it or remove encoder.weights")
        elif (actual := sha256_file(path)) != declared["sha256"]:
            report.error(str(path), f"sha256 {actual[:12]}… does not match model.yaml's {declared['sha256'][:12]}…")
    results = sorted((folder / RESULTS_DIR).glob("*.json"))
    if not results:
        report.error(str(folder / RESULTS_DIR), "no result files; run `subclassbench submit` to add one")
    for path in results:
        try:
            result = read_result(path)
            validate_result(result)
        except SubclassbenchError as exc:
            report.errors.append(f"{path}: {exc}")
            continue
        task_name = result["task"]["name"]
        if path.stem != task_name:
            report.error(str(path), f"holds task '{task_name}'; name the file {task_name}.json")
            continue
        try:
            task = load_task(task_name)
        except SubclassbenchError:
            report.error(str(path), f"result for unknown task '{task_name}'; use a task from `subclassbench tasks`")
            continue
        encoder = result["encoder"]
        if encoder["spec"] != model["encoder"]["spec"]:
            declared_spec = model["encoder"]["spec"]
            report.error(str(path), f"encoder '{encoder['spec']}' differs from model.yaml's '{declared_spec}'")
        got = (encoder.get("weights") or {}).get("sha256")
        if declared is not None and got != declared["sha256"]:
            report.error(str(path), "was computed with other weights than model.yaml declares (sha256 differs)")
        random_init = bool(model["encoder"].get("random_init", False))
        if encoder["source"] in ("timm", "open_clip") and random_init == bool(encoder["pretrained"]):
            state = "random-init" if random_init else "pretrained"
            report.error(
                str(path), f"model.yaml declares a {state} encoder but the result's encoder.pretrained disagrees"
            )
        undeclared_file = encoder.get("tag") is None and encoder.get("weights") and encoder["source"] == "builtin"
        if declared is None and undeclared_file:
            report.error(str(path), "was computed with a weights file that model.yaml does not declare")
        reasons = []
        if result["task"]["definition_fingerprint"] != task.definition_fingerprint:
            reasons.append(f"task {task_name} changed (now v{task.version})")
        if result["protocol"]["fingerprint"] != protocol_fingerprint():
            reasons.append("protocol changed")
        uncommitted = "clusterability" in result["metrics"] and "committed_layer" not in result["summary"]
        if reasons:
            report.stale_reasons[path] = f"({'; '.join(reasons)}); re-run `subclassbench submit`"
        elif task.validation_split and uncommitted:
            split = task.validation_split
            report.error(str(path), f"has no committed layer; re-run with --data holding the '{split}' split too")
            continue
        report.results.append(path)
    return report


def validate_tree(root: Path) -> list[Report]:
    """``root`` is one submission folder (has model.yaml) or a folder of them."""
    if not root.is_dir():
        raise SubclassbenchError(f"{root} is not a folder; pass submissions/ or submissions/<name>")
    if (root / MODEL_FILE).exists():
        return [validate_submission(root)]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    return [validate_submission(p) for p in folders]


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
    return model


def store_weights(folder: Path, source: Path) -> dict[str, str]:
    """Copy (or convert to) ``weights.safetensors`` in the submission; returns the model.yaml entry."""
    from safetensors.torch import save_file

    from subclassbench.encoders import read_state_dict

    target = folder / WEIGHTS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    if source.suffix == ".safetensors":
        shutil.copyfile(source, tmp)
    else:  # a torch checkpoint: store its tensors as safetensors, which loads without pickle
        state, _ = read_state_dict(source)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(target)
    return {"file": WEIGHTS_FILE, "sha256": sha256_file(target), "converted_from": source.name}


def write_model_file(folder: Path, model: dict[str, Any]) -> None:
    problem = first_error(model, "submission")
    if problem:
        raise SubclassbenchError(f"model.yaml would be invalid: {problem}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MODEL_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(model, sort_keys=False, allow_unicode=True, width=100))
    tmp.replace(folder / MODEL_FILE)


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


def compare_results(submitted: dict[str, Any], rerun: dict[str, Any]) -> list[Difference | str]:
    """Metrics that differ by more than their tolerance, layers that do not line up, a moved committed layer."""
    out: list[Difference | str] = []
    old = {layer["name"]: layer for layer in submitted["layers"]}
    new_names = [layer["name"] for layer in rerun["layers"]]
    if list(old) != new_names:
        out.append(f"layers differ: submitted {list(old)}, re-run {new_names}")
    for key in ("committed_layer", "best_layer"):
        if submitted["summary"].get(key) != rerun["summary"].get(key):
            out.append(f"{key}: submitted {submitted['summary'].get(key)}, re-run {rerun['summary'].get(key)}")
    for layer in rerun["layers"]:
        before = old.get(layer["name"])
        if before is None:
            continue
        for family in ("clusterability", "transfer"):
            for metric, value in layer.get(family, {}).items():
                if metric not in TOLERANCES or not isinstance(value, int | float):
                    continue
                was = before.get(family, {}).get(metric)
                if was is None or abs(float(was) - float(value)) > TOLERANCES[metric]:
                    out.append(Difference(layer["name"], metric, math.nan if was is None else float(was), float(value)))
    return out
