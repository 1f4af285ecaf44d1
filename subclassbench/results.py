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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_result(path: str | Path) -> dict[str, Any]:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SubclassbenchError(f"cannot read result {path}: {exc}") from None
    validate_result(result, str(path))
    return result


def format_table(result: dict[str, Any]) -> str:
    """Per-layer table: depth, width and the clusterability scores."""
    from tabulate import tabulate

    best = result["summary"]["best_layer"]
    rows = []
    for layer in result["layers"]:
        c = layer["clusterability"]
        ward_ami = c["ward"]["ami"] if c["ward"] else None
        rows.append(
            [
                layer["name"] + (" *" if layer["name"] == best else ""),
                layer["depth"],
                layer["dim"],
                c["ami"],
                c["ari"],
                c["nmi"],
                c["purity"],
                c["matched_acc"],
                c["fine_acc"],
                ward_ami,
            ]
        )
    headers = ["layer", "depth", "dim", "AMI", "ARI", "NMI", "purity", "matched", "fine acc", "Ward AMI"]
    return tabulate(rows, headers=headers, floatfmt=".3f", missingval="-")
