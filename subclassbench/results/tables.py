"""Results as tables: one row per result file, the headline numbers with their intervals.

``load_results(paths)`` reads result files (or folders of them, searched
recursively) into a pandas DataFrame; ``subclassbench results`` prints it or
writes it as CSV, Parquet or JSON. Every file is read through
:class:`~subclassbench.results.result.Result`, so a hand-edited or broken file
stops the table with its one-line error instead of entering it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result

if TYPE_CHECKING:
    import pandas as pd

# Headline columns with a 95% interval (each is also its summary.ci95 key).
INTERVAL_COLUMNS = (
    "committed_ami",
    "committed_reconstruction_acc",
    "committed_within_superclass_acc",
    "committed_ward_ami",
    "best_ami",
    "ood_retained",
)
MAX_FILES = 100_000


def result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Result JSON files named directly or found under folders (sorted; per-sample files are not results)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.json") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise SubclassbenchError(f"{path} does not exist; pass result JSON files or folders holding them")
        if len(found) > MAX_FILES:
            raise SubclassbenchError(f"more than {MAX_FILES} files under {path}; pass a narrower folder")
    if not found:
        raise SubclassbenchError("no result files found; pass result JSON files or folders holding them")
    return found


def result_row(result: Result) -> dict[str, Any]:
    """One result's identity and headline numbers, flat (intervals as ``<column>_low`` / ``_high``)."""
    summary, encoder, task = result.summary, result.encoder, result.task
    transfer = summary.get("transfer") or {}
    tunnel = summary.get("tunnel")
    ward = result.committed_ward
    row: dict[str, Any] = {
        "file": str(result.path) if result.path else None,
        "model": encoder["spec"],
        "weights_sha256": result.weights_sha256,
        "pretrained": encoder.get("pretrained"),
        "task": result.task_name,
        "split": task["split"],
        "n_samples": task["n_samples"],
        "canonical": result.canonical,
        "limited": result.limited,
        "dtype": result.dtype,
        "protocol": result["protocol"]["version"],
        "committed_layer": summary.get("committed_layer"),
        "committed_ami": summary.get("committed_ami"),
        "committed_reconstruction_acc": summary.get("committed_reconstruction_acc"),
        "committed_within_superclass_acc": summary.get("committed_within_superclass_acc"),
        "committed_ward_ami": None if ward is None else ward["ami"],
        "best_layer": summary.get("best_layer"),
        "best_ami": summary.get("best_ami"),
        "last_ami": summary.get("last_ami"),
        "ood_retained": summary.get("ood_retained"),
        "tunnel": None if not tunnel else f"{tunnel['start']} ({tunnel['strength']})",
        "best_id_acc": transfer.get("best_id_acc"),
    }
    ci = summary.get("ci95", {})
    for column in INTERVAL_COLUMNS:
        low, high = ci.get(column, (None, None))
        row[f"{column}_low"], row[f"{column}_high"] = low, high
    return row


def _tunnel(record: dict[str, str] | None) -> str | None:
    return None if not record else f"{record['start']} ({record['strength']})"


def load_results(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Read result files (or folders of them) into a DataFrame, one row per result, in file order."""
    import pandas as pd

    if isinstance(paths, str | Path):
        paths = [paths]
    rows = [result_row(Result.read(path)) for path in result_files(paths)]
    return pd.DataFrame(rows)


LIMITED_MARK = "limited"  # how a --limit quick try is marked wherever its numbers are shown


def format_results(frame: pd.DataFrame) -> str:
    """The terminal table: headline numbers as ``value [low, high]``, short model and file names."""
    from tabulate import tabulate

    def cell(row: Any, column: str, digits: int = 3) -> str:
        value = row[column]
        if value is None or value != value:  # None or NaN
            return "—"
        low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
        interval = "" if low is None or low != low else f" [{low:.{digits}f}, {high:.{digits}f}]"
        return f"{value:.{digits}f}{interval}"

    body = [
        [
            row["model"] + (f" ({row['weights_sha256'][:8]})" if isinstance(row["weights_sha256"], str) else ""),
            row["task"] + (f" ({LIMITED_MARK})" if row["limited"] else ""),
            _text(row["committed_layer"]),
            cell(row, "committed_ami"),
            cell(row, "committed_reconstruction_acc"),
            cell(row, "ood_retained", 1),
            _text(row["tunnel"]),
            row["file"],
        ]
        for _, row in frame.iterrows()
    ]
    headers = ["model (weights)", "task", "committed layer", "AMI", "reconstruction acc", "OOD retained %", "tunnel"]
    table = tabulate(body, headers=[*headers, "file"], disable_numparse=True)
    if frame.empty or not frame["limited"].any():
        return table
    return table + f"\n{LIMITED_MARK}: a --limit quick try on a subset of the images; not comparable with full results"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "—"  # pandas stores a missing text as NaN
