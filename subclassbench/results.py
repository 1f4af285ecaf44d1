"""Result files: build, schema-check, write atomically, read back, print.

One JSON file per (encoder, task); the schema is ``schemas/result.schema.json``
and is documented in ``docs/result-schema.md``. Everything outside ``run``
is deterministic: the same command twice gives the same bytes there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from subclassbench.errors import SubclassbenchError
from subclassbench.schemas import first_error

SCHEMA_VERSION = "1.0"


def validate_result(result: Any, where: str = "result") -> None:
    """Raise a one-line error for the first schema violation."""
    problem = first_error(result, "result")
    if problem:
        raise SubclassbenchError(f"{where}: does not match result schema {SCHEMA_VERSION} {problem}")


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write via a temporary file and rename: never a half-written result."""
    validate_result(result)
    path = Path(path)
    check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise SubclassbenchError(f"cannot write {path}: {exc.strerror}; choose another --out") from None
    try:
        with os.fdopen(fd, "w") as f:
            # allow_nan=False: a NaN score is a bug, never valid JSON in a result.
            json.dump(result, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output_path(path: Path) -> None:
    """Fail before any work when ``--out`` cannot be a result file."""
    if path.is_dir():
        raise SubclassbenchError(f"--out {path} is a folder; give a file path such as {path / 'result.json'}")


def read_result(path: str | Path) -> dict[str, Any]:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SubclassbenchError(f"cannot read result {path}: {exc}") from None
    validate_result(result, str(path))
    return result


def format_table(result: dict[str, Any]) -> str:
    """Per-layer table: depth, width, clusterability and (when run) transfer scores."""
    from tabulate import tabulate

    best = result["summary"].get("best_layer")
    headers = ["layer", "depth", "dim"]
    if "clusterability" in result["metrics"]:
        headers += ["AMI", "ARI", "NMI", "purity", "fine acc", "Ward AMI"]
    if "transfer" in result["metrics"]:
        headers += ["ID acc", "OOD shift", "OOD refit", "rank", "eff. rank"]
    rows = []
    for layer in result["layers"]:
        row = [layer["name"] + (" *" if layer["name"] == best else ""), layer["depth"], layer["dim"]]
        if "clusterability" in layer:
            c = layer["clusterability"]
            row += [c["ami"], c["ari"], c["nmi"], c["purity"], c["fine_acc"], c["ward"]["ami"] if c["ward"] else None]
        if "transfer" in layer:
            t = layer["transfer"]
            row += [t["id_acc"], t["ood_shift_acc"], t["ood_refit_acc"], t["numerical_rank"], t["effective_rank"]]
        rows.append(row)
    return tabulate(rows, headers=headers, floatfmt=".3f", missingval="-")


def format_summary(result: dict[str, Any]) -> list[str]:
    """Headline lines printed under the table."""
    summary, lines = result["summary"], []
    if "best_layer" in summary:
        lines.append(
            f"clusterability: best layer {summary['best_layer']} (AMI {summary['best_ami']:.3f}); "
            f"last layer {summary['last_layer']}: AMI {summary['last_ami']:.3f}, "
            f"fine-label recovery {summary['last_fine_acc']:.3f}"
        )
    if "committed_layer" in summary:
        lines.append(
            f"committed layer {summary['committed_layer']} (chosen on '{summary['selection']['split']}'): "
            f"AMI {summary['committed_ami']:.3f}, fine-label recovery {summary['committed_fine_acc']:.3f}, "
            f"gap to the best layer {summary['committed_gap']:.3f}"
        )
    if "transfer" in summary:
        t = summary["transfer"]
        rho = "n/a" if t["pearson_id_ood"] is None else f"{t['pearson_id_ood']:.3f}"
        lines.append(
            f"transfer ({t['ood_basis'].replace('_', ' ')}): {t['ood_retained']:.1f}% OOD performance retained at "
            f"{t['penultimate_layer']}, tunnel start {t['tunnel_start']}, Pearson(ID, OOD) {rho}"
        )
    return lines + [f"note: {note}" for note in result.get("notes", [])]
