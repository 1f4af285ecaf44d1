"""A result as the terminal shows it: the headline first, a per-layer table that fits the terminal, a legend.

The compact table keeps the columns a reader needs most and adds the others while they fit the width
(``wide`` shows every column). Two marks say which layers matter: ``>`` the committed layer (chosen on the
validation split, protocol §3.5, the number a paper should quote) and ``*`` the best AMI on the test split
(reported, never chosen on). Every other line is wrapped to the width, so nothing runs off an 80-column
terminal. The columns are explained in docs/result-schema.md ("The per-layer table").
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from subclassbench.results.result import Result

COMMITTED, BEST = ">", "*"
DOCS = "docs/result-schema.md"
FALLBACK_WIDTH = 100  # not a terminal (a pipe, a test runner) and no $COLUMNS


@dataclass(frozen=True)
class Column:
    """One per-layer column: its header, the metric family it needs and how to read it from a layer."""

    header: str
    family: str | None  # None: always present
    value: Callable[[dict[str, Any]], Any]


def _c(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda layer: layer["clusterability"][key]


def _t(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda layer: layer["transfer"][key]


def _ward(layer: dict[str, Any], last: bool = False) -> Any:
    ward = layer["clusterability"]["ward"]
    return None if not ward else (ward["overcluster"][-1]["purity"] if last else ward["ami"])


# In priority order: the compact table takes columns from the front while they fit.
COLUMNS = [
    Column("AMI", "clusterability", _c("ami")),
    Column("recon acc", "clusterability", _c("reconstruction_acc")),
    Column("depth", None, lambda layer: layer["depth"]),
    Column("sup acc", "clusterability", _c("superclass_acc")),
    Column("ID acc", "transfer", _t("id_acc")),
    Column("OOD acc", "transfer", _t("ood_mean_acc")),
    Column("dim", None, lambda layer: layer["dim"]),
    Column("oracle", "clusterability", _c("within_superclass_acc")),
    Column("purity", "clusterability", _c("purity")),
    Column("Ward AMI", "clusterability", _ward),
    Column("shift acc", "transfer", _t("subpop_shift_acc")),
    Column("refit acc", "transfer", _t("subpop_refit_acc")),
    Column("Ward pur×5", "clusterability", lambda layer: _ward(layer, last=True)),
    Column("feat. rank", "transfer", _t("numerical_rank")),
    Column("eff. rank", "transfer", _t("effective_rank")),
]


def terminal_width() -> int:
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


def _render(result: Result, columns: list[Column]) -> str:
    from tabulate import tabulate

    summary = result.summary
    committed, best = result.committed_layers, summary.get("best_layer")
    rows: list[list[Any]] = []
    for record in result.layers:
        layer = dict(record)
        marks = (COMMITTED if layer["name"] in committed else "") + (BEST if layer["name"] == best else "")
        row: list[Any] = [f"{layer['name']} {marks}".rstrip()]
        for column in columns:
            row.append(column.value(layer) if column.family is None or column.family in layer else None)
        rows.append(row)
    return tabulate(rows, headers=["layer", *(c.header for c in columns)], floatfmt=".3f", missingval="-")


def format_table(result: Result, width: int | None = None, wide: bool = False) -> str:
    """The per-layer table: every column (``wide``), or as many as fit ``width`` (default: the terminal's)."""
    available = [c for c in COLUMNS if c.family is None or c.family in result.metrics]
    if wide:
        return _render(result, available)
    width = terminal_width() if width is None else width
    chosen: list[Column] = []
    for column in available:  # greedy in priority order; a later, narrower column may still fit
        table = _render(result, [*chosen, column])
        if max(len(line) for line in table.splitlines()) <= width:
            chosen.append(column)
    return _render(result, chosen)


def _ci(result: Result, key: str, digits: int = 3) -> str:
    """`` [low, high]`` for a headline metric with an interval, else nothing."""
    ci = result.summary.get("ci95", {}).get(key)
    return "" if ci is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def headline(result: Result) -> str | None:
    """The number to quote: the committed layer's AMI and reconstruction accuracy, with their 95% intervals."""
    summary = result.summary
    if "committed_layer" not in summary:
        return None
    limited = " (limited: a --limit quick try, not a canonical number)" if result.limited else ""
    return (
        f"committed layer {summary['committed_layer']} ({_chosen_on(summary)}): "
        f"AMI {summary['committed_ami']:.3f}{_ci(result, 'committed_ami')}, reconstruction accuracy "
        f"{_fmt(summary['committed_reconstruction_acc'])}{_ci(result, 'committed_reconstruction_acc')} "
        f"(95% intervals over the test images){limited}"
    )


def _chosen_on(summary: Any) -> str:
    selection = summary.get("selection") or {}
    split = selection.get("split", "val")
    if selection.get("method") == "crossfit":
        return f"cross-fitted on '{split}'"
    return f"chosen on '{split}'"


def legend(result: Result) -> str:
    marks = f"{COMMITTED} committed layer ({_chosen_on(result.summary)})  {BEST} best AMI on test (not chosen on)"
    return f"{marks}  columns: {DOCS}"


def format_summary(result: Result) -> list[str]:
    """The lines under the table: the other layers' story, transfer, notes (with intervals where present)."""
    summary, lines = result.summary, []
    if "best_layer" in summary:
        lines.append(
            f"clusterability: best layer {summary['best_layer']} (AMI {summary['best_ami']:.3f}); "
            f"last layer {summary['last_layer']}: AMI {summary['last_ami']:.3f}, "
            f"reconstruction accuracy {_fmt(summary['last_reconstruction_acc'])} "
            f"(superclass {_fmt(summary.get('last_superclass_acc'))}), "
            f"within-superclass oracle {summary['last_within_superclass_acc']:.3f}"
        )
    if "committed_layer" in summary:
        lines.append(
            f"committed layer: within-superclass oracle {summary['committed_within_superclass_acc']:.3f}, "
            f"gap to the best layer {summary['committed_gap']:.3f}"
        )
    if "transfer" in summary:
        t = summary["transfer"]
        rho = _fmt(t["pearson_id_ood"])
        if t["ood_sets"]:
            tunnel = t["tunnel"]
            where = "no tunnel" if tunnel is None else f"tunnel from {tunnel['start']} ({tunnel['strength']})"
            sets = ", ".join(f"{s['name']} {s['ood_retained']:.1f}%" for s in t["ood_sets"])
            lines.append(
                f"OOD transfer: {t['ood_retained']:.1f}%{_ci(result, 'ood_retained', 1)} retained at "
                f"{t['penultimate_layer']} (mean over sets: {sets}); {where}; Pearson(ID, OOD) {rho}"
            )
        else:
            lines.append("OOD transfer: the task lists no OOD set (or its data was absent; see the notes)")
        shift = t["subpopulation_shift"]
        if shift is not None:
            parts = [_shift_text(result, k, shift[k]) for k in ("subpop_shift", "subpop_refit") if k in shift]
            lines.append(f"subpopulation shift (same classes, new subclasses; not OOD): {'; '.join(parts)}")
    return lines + [f"note: {note}" for note in result.notes]


def format_report(result: Result, width: int | None = None, wide: bool = False) -> list[str]:
    """Headline, table, legend, then the summary: every prose line wrapped to ``width`` (the table fits it
    unless ``wide``)."""
    width = terminal_width() if width is None else width

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, width=max(width, 40), subsequent_indent="  ", break_on_hyphens=False) or [""]

    first = headline(result)
    lines = [] if first is None else wrap(first)
    lines += format_table(result, width, wide).splitlines()
    lines += wrap(legend(result))
    for line in format_summary(result):
        lines += wrap(line)
    return lines


def _shift_text(result: Result, kind: str, curve: dict[str, Any]) -> str:
    name = kind.split("_")[1]
    if result.flat_shift(kind):  # §4.3: its % retained would be noise
        return f"{name} flat or never above chance (best {curve['best_acc']:.3f}): no % retained"
    return f"{name} {curve['retained']:.1f}% retained (best layer {curve['best_layer']})"
