"""Result files: the typed result, its schema check, migrations, atomic writes, reading back, printing.

One JSON file per (encoder, task); the schema is ``schemas/result.schema.json``
and is documented in ``docs/result-schema.md``. The document's shape is
spelled out below as TypedDicts (a test keeps them and the schema in step);
:class:`Result` wraps one validated document with accessors, and is what
every command passes around, so a file is read and validated once.
Everything outside ``run`` is deterministic: the same command twice gives
the same bytes there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from subclassbench.core.files import atomic_write_many, read_json
from subclassbench.errors import SubclassbenchError, first_line
from subclassbench.schemas import first_error
from subclassbench.scoring.commitment import committed_layer_names
from subclassbench.scoring.samples import SampleOutputs, sidecar_name

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

# 2.0: protocol v2 (schema 1.0 results are protocol v1; see leaderboard/v1/).
# 2.1: confidence intervals (summary.ci95, layers[].ci95, uncertainty) and the per-sample file (samples).
# 2.2: any registered encoder source (hf, module, plug-ins: encoder.plugin) and hub weights
#      (encoder.weights.hub: repository, resolved commit, files' sha256).
# 2.3: uncertainty.method may name the current bootstrap method (AMI replicates centred on the sample NMI);
#      2.2 files keep the earlier one, which still reads (`subclassbench intervals` recomputes it).
# 2.4: uncertainty.method may name the method that names the clusters once, on the whole sample (the
#      within-superclass accuracy's replicates no longer re-match per resample).
SCHEMA_VERSION = "2.5"


class ProtocolRecord(TypedDict):
    version: str
    fingerprint: str
    params: dict[str, Any]


class TaskRecord(TypedDict, total=False):
    name: str
    version: int
    fingerprint: str
    definition_fingerprint: str
    manifest_sha256: str
    split: str
    n_samples: int
    n_superclasses: int
    n_subclasses: int
    data_source: str
    splits: dict[str, dict[str, Any]]
    ood_sets: list[dict[str, Any]]


class EncoderRecord(TypedDict, total=False):
    spec: str
    source: str
    arch: str
    tag: str | None
    pretrained: bool
    weights: dict[str, Any] | None
    n_params: int
    preprocessing: dict[str, Any]
    prefix_tokens: int
    arch_kwargs: dict[str, Any]
    preprocessing_overrides: dict[str, Any]  # the fields --preprocess replaced, resolved
    layers: list[str]


class LayerRecord(TypedDict, total=False):
    name: str
    depth: float
    dim: int
    pooling: str
    clusterability: dict[str, Any]
    transfer: dict[str, Any]
    flags: list[str]  # degenerate features: "constant", "mostly_dead_units"
    ci95: dict[str, list[float]]  # metric → [low, high]


class Summary(TypedDict, total=False):
    primary_metric: str
    best_layer: str
    best_depth: float
    best_ami: float
    best_within_superclass_acc: float
    last_layer: str
    last_ami: float
    last_within_superclass_acc: float
    last_reconstruction_acc: float | None
    last_superclass_acc: float | None
    committed_layer: str
    committed_layers: list[str]
    committed_ward_ami: float
    committed_ami: float
    committed_within_superclass_acc: float
    committed_reconstruction_acc: float | None
    committed_superclass_acc: float | None
    committed_gap: float
    selection: dict[str, Any]
    ci95: dict[str, list[float]]
    ood_retained: float | None
    tunnel: dict[str, str] | None
    pearson_id_ood: float | None
    transfer: dict[str, Any]


class ResultDoc(TypedDict, total=False):
    schema_version: str
    protocol: ProtocolRecord
    metrics: list[str]
    notes: list[str]
    task: TaskRecord
    encoder: EncoderRecord
    environment: dict[str, Any]
    seeds: dict[str, Any]
    layers: list[LayerRecord]
    summary: Summary
    uncertainty: dict[str, Any]
    samples: dict[str, Any]
    run: dict[str, Any]


# Schema migrations: from-version → a function that returns the document at the next version.
# Reading a file applies them in turn, so old results stay readable after the schema moves on.
def _from_2_0(doc: dict[str, Any]) -> dict[str, Any]:
    """2.0 → 2.1 adds only optional fields: a 2.0 result reads as one without intervals or per-sample file."""
    return {**doc, "schema_version": "2.1"}


def _from_2_1(doc: dict[str, Any]) -> dict[str, Any]:
    """2.1 → 2.2 only widens what an encoder record may hold: a 2.1 result is a valid 2.2 result."""
    return {**doc, "schema_version": "2.2"}


def _from_2_2(doc: dict[str, Any]) -> dict[str, Any]:
    """2.2 → 2.3 only widens the bootstrap methods a result may name: a 2.2 result is a valid 2.3 result."""
    return {**doc, "schema_version": "2.3"}


def _from_2_3(doc: dict[str, Any]) -> dict[str, Any]:
    """2.3 → 2.4 only widens the bootstrap methods a result may name: a 2.3 result is a valid 2.4 result."""
    return {**doc, "schema_version": "2.4"}


def _from_2_4(doc: dict[str, Any]) -> dict[str, Any]:
    """2.4 → 2.5 adds protocol v3's cross-fitted selection as a second form: a 2.4 result is a valid 2.5 result."""
    return {**doc, "schema_version": "2.5"}


MIGRATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "2.0": ("2.1", _from_2_0),
    "2.1": ("2.2", _from_2_1),
    "2.2": ("2.3", _from_2_2),
    "2.3": ("2.4", _from_2_3),
    "2.4": ("2.5", _from_2_4),
}


def migrate(doc: dict[str, Any], where: str = "result") -> dict[str, Any]:
    """Bring a document to :data:`SCHEMA_VERSION` (or fail naming the fix)."""
    seen = set()
    while isinstance(doc, dict) and isinstance(doc.get("schema_version"), str) and doc["schema_version"] in MIGRATIONS:
        version = doc["schema_version"]
        if version in seen:  # a cycle in the table is a bug, never an endless loop
            break
        seen.add(version)
        _, step = MIGRATIONS[version]
        doc = step(doc)
    if isinstance(doc, dict) and doc.get("schema_version") == "1.0":
        raise SubclassbenchError(
            f"{where}: a protocol v1 result (schema 1.0); protocol v2 measures different quantities, so it cannot "
            "be converted: re-run the evaluation (v1 numbers stay archived in leaderboard/v1/)"
        )
    if isinstance(doc, dict) and "schema_version" in doc and doc["schema_version"] != SCHEMA_VERSION:
        raise SubclassbenchError(
            f"{where}: schema version {doc.get('schema_version')!r} is not readable by this subclassbench "
            f"(reads {SCHEMA_VERSION}); upgrade subclassbench or re-run the evaluation"
        )
    return doc


def validate_result(result: Any, where: str = "result") -> None:
    """Raise a one-line error for the first schema violation."""
    if isinstance(result, Result):
        result = result.doc
    problem = first_error(result, "result")
    if problem:
        raise SubclassbenchError(f"{where}: does not match result schema {SCHEMA_VERSION} {problem}")


@dataclass(frozen=True)
class Result:
    """One validated result document (and the file it came from, if any)."""

    doc: ResultDoc
    path: Path | None = None
    samples: SampleOutputs | None = None  # the per-sample outputs (``samples.py``), when the result has them

    @classmethod
    def from_doc(cls, doc: dict[str, Any], path: Path | None = None, samples: SampleOutputs | None = None) -> Result:
        """Migrate, schema-check and integrity-check a document (its summary must follow from its layers, its
        intervals and per-layer scores from its per-sample outputs)."""
        from subclassbench.results.integrity import sample_problems, summary_problems

        where = str(path) if path else "result"
        bad = first_non_finite(doc)
        if bad is not None:
            raise SubclassbenchError(f"{where}: {bad} is not a finite number; results hold no NaN or infinity")
        doc = migrate(doc, where)
        validate_result(doc, where)
        if samples is None and path is not None and "samples" in doc:  # its record is schema-checked by now
            samples = _read_samples(path, doc["samples"])
        try:
            problems = summary_problems(doc)
            if samples is not None:
                problems += sample_problems(doc, samples)
            elif path is not None and "ci95" in doc["summary"]:  # a file must bring the data its intervals need
                problems.append("its intervals have no per-sample file to follow from")
        except (TypeError, KeyError, IndexError, ValueError, AttributeError, OverflowError) as exc:  # odd shapes
            problems = [f"its per-layer data is malformed ({type(exc).__name__}: {first_line(exc, 80)})"]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SubclassbenchError(
                f"{where}: {problems[0]}{more}; results must not be edited by hand: re-run the evaluation"
            )
        return cls(cast(ResultDoc, doc), path, samples)  # a ResultDoc: it passed the result schema above

    @classmethod
    def read(cls, path: str | Path) -> Result:
        path = Path(path)
        try:
            # NaN and infinity are not JSON, nor is a key given twice (a reader and this tool could see two
            # different numbers); a file that holds them was not written by subclassbench.
            doc = read_json(path, "result")
        except SubclassbenchError as exc:
            raise SubclassbenchError(f"{exc}; re-run the evaluation") from None
        return cls.from_doc(doc, path)

    # ----------------------------------------------------------------- accessors

    def __getitem__(self, key: str) -> Any:
        """Plain-dict access to a top-level field, for scripts and notebooks."""
        fields: Mapping[str, Any] = self.doc  # any key, not only the typed ones
        return fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)

    @property
    def task(self) -> TaskRecord:
        return self.doc["task"]

    @property
    def task_name(self) -> str:
        return self.doc["task"]["name"]

    @property
    def encoder(self) -> EncoderRecord:
        return self.doc["encoder"]

    @property
    def metrics(self) -> list[str]:
        return self.doc["metrics"]

    @property
    def layers(self) -> list[LayerRecord]:
        return self.doc["layers"]

    @property
    def layer_names(self) -> list[str]:
        return [layer["name"] for layer in self.doc["layers"]]

    @property
    def committed_layers(self) -> list[str]:
        """The committed layer(s): protocol v3's two cross-fitted choices when they differ, else one."""
        return committed_layer_names(dict(self.summary))

    @property
    def committed_ward(self) -> dict[str, Any] | None:
        """Ward's scores (Nguyen & Kornblith's algorithm) at the committed layer, or None; under protocol v3 the
        cross-fitted AMI (``ami``) alone, read on the halves as every committed metric."""
        if "committed_ward_ami" in self.summary:
            return {"ami": self.summary["committed_ward_ami"]}
        name = self.summary.get("committed_layer")
        layer = next((layer for layer in self.layers if layer["name"] == name), None)
        return None if layer is None else layer.get("clusterability", {}).get("ward")

    @property
    def summary(self) -> Summary:
        return self.doc["summary"]

    @property
    def notes(self) -> list[str]:
        return self.doc.get("notes", [])

    @property
    def protocol_fingerprint(self) -> str:
        return self.doc["protocol"]["fingerprint"]

    @property
    def weights_sha256(self) -> str | None:
        return (self.doc["encoder"].get("weights") or {}).get("sha256")

    @property
    def limited(self) -> bool:
        """True for a ``--limit`` quick try (a subset of some split): never a submission, never ranked."""
        return any(s.get("limit") is not None for s in self.doc["task"].get("splits", {}).values())

    @property
    def dtype(self) -> str:
        """The forward pass's precision (results before ``run.compute`` existed ran fp32)."""
        return str((self.doc["run"].get("compute") or {}).get("dtype", "fp32"))

    @property
    def canonical(self) -> bool:
        """False when any split differs from its canonical size (such results are never ranked first)."""
        return all(s.get("canonical", True) for s in self.doc["task"].get("splits", {}).values())

    # ----------------------------------------------------------------- tables

    def flat_shift(self, kind: str = "subpop_shift") -> bool | None:
        """Whether the subpopulation-shift curve ``kind`` (``subpop_shift`` or ``subpop_refit``) is flat or never above
        chance (protocol §4.3's rule, read off the stored per-layer curve, so results written before the rule was
        applied to shift curves are read the same way); None when the result has no such curve. Its % retained
        then means nothing: a curve below chance at every layer "retains" whatever its noise gives."""
        from subclassbench.scoring.transfer import flat_curve

        transfer = self.summary.get("transfer") or {}
        shift = transfer.get("subpopulation_shift")
        if not shift or kind not in shift:
            return None
        curve: list[Any] = [(layer.get("transfer") or {}).get(f"{kind}_acc") for layer in self.layers]
        if any(v is None for v in curve):
            return None
        chance: Any = transfer.get("chance_id") if kind == "subpop_shift" else shift.get("chance_refit")
        if chance is None:
            return None
        return flat_curve([float(v) for v in curve], float(chance), int(shift["n_shift"]))

    def plot(self, *others: Result, path: str | Path | None = None) -> Figure:
        """This result's subclass AMI per layer, with its 95% band and committed layer, overlaid with ``others``
        on the same task; each model keeps its colour (the board's, and ``subclassbench plot``'s). With ``path``
        the figure is also written as ``<path stem>.png``, ``.svg`` and ``.pdf``; the figure is returned."""
        from subclassbench.figures.drawing import results_figure, results_files, write_figure

        results = [self, *others]
        figure = results_figure(results)
        if path is not None:
            write_figure(results_files(results), Path(path).with_suffix(""))
        return figure

    def to_pandas(self) -> pd.DataFrame:
        """One row per layer, input side first: its clusterability and transfer scores, flat, with the 95%
        interval of each as ``<column>_low`` / ``_high`` where the result has one; ``committed`` marks the
        layer the protocol committed to (``subclassbench.load_results`` tabulates whole results instead)."""
        import pandas as pd

        committed = self.committed_layers
        rows = []
        for layer in self.layers:
            row: dict[str, Any] = {
                "model": self.encoder["spec"],
                "task": self.task_name,
                "layer": layer["name"],
                "depth": layer["depth"],
                "dim": layer["dim"],
                "committed": layer["name"] in committed,
            }
            clusters = layer.get("clusterability") or {}
            row.update((k, v) for k, v in clusters.items() if not isinstance(v, dict | list))
            ward = clusters.get("ward")
            if isinstance(ward, dict):
                row.update((f"ward_{k}", v) for k, v in ward.items() if not isinstance(v, dict | list))
            transfer = layer.get("transfer") or {}
            row.update((k, v) for k, v in transfer.items() if not isinstance(v, dict | list))
            for name, ood in (transfer.get("ood") or {}).items():
                row[f"ood_acc[{name}]"] = ood.get("acc")
            for column, (low, high) in (layer.get("ci95") or {}).items():
                row[f"{column}_low"], row[f"{column}_high"] = low, high
            row["flags"] = ",".join(layer.get("flags", [])) or None
            rows.append(row)
        return pd.DataFrame(rows)

    # ----------------------------------------------------------------- writing

    def to_json(self) -> str:
        # allow_nan=False: a NaN score is a bug, never valid JSON in a result.
        return json.dumps(self.doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def write(self, path: str | Path) -> Path:
        """Validate, then write the JSON and its per-sample file, both or neither: never a half-written result."""
        path = Path(path)
        check_output_path(path)
        files: dict[Path, bytes] = {}
        if self.samples is not None:
            data = self.samples.to_bytes()
            self.doc["samples"] = self.samples.record(data, sidecar_name(path))
            files[path.parent / sidecar_name(path)] = data
        validate_result(self.doc)
        try:
            text = self.to_json()
        except ValueError as exc:
            raise SubclassbenchError(f"result for {path} holds a NaN or infinite value ({exc}); a bug") from None
        files[path] = text.encode()  # last: a reader that sees the JSON finds its per-sample file beside it
        atomic_write_many(files)
        return path


def first_non_finite(doc: Any) -> str | None:
    """The path of the first NaN or infinite number in a JSON-like document (walked without recursion)."""
    stack: list[tuple[str, Any]] = [("(top level)", doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where
        if isinstance(node, dict):
            stack.extend((f"{where}/{k}" if where != "(top level)" else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}/{i}", v) for i, v in enumerate(node))
    return None


def _read_samples(path: Path, record: dict[str, Any]) -> SampleOutputs:
    """The per-sample file a result names: only ever the one beside it, under the name its own file gives."""
    expected = sidecar_name(path)
    if record.get("file") != expected:
        raise SubclassbenchError(
            f"{path}: its per-sample file is recorded as {str(record.get('file'))[:80]!r}, not {expected!r} beside "
            "it; results and their .samples.npz are renamed together: re-run the evaluation"
        )
    return SampleOutputs.read(path.parent / expected, record)


def read_result(path: str | Path) -> Result:
    """Read, migrate and validate one result file."""
    return Result.read(path)


def check_output_path(path: Path) -> None:
    """Fail before any work when ``--out`` cannot be a result file."""
    if path.is_dir():
        raise SubclassbenchError(f"--out {path} is a folder; give a file path such as {path / 'result.json'}")
