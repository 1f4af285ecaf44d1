"""How one leaderboard number is written: the estimate, its spread across seeds and its 95% interval.

The markdown tables (:mod:`subclassbench.leaderboard.board`) and the site
(:mod:`subclassbench.leaderboard.site`) both print cells this way, so the two never disagree.
"""

from __future__ import annotations

from typing import Any


def num(value: float | None, digits: int = 3) -> str:
    """The value to ``digits`` decimals, or an em dash when there is none."""
    return "—" if value is None else f"{value:.{digits}f}"


def cell(row: dict[str, Any], field: str, digits: int = 3) -> str:
    """``value [low, high]`` (the 95% interval), with ``± std`` across training seeds when there are several."""
    value = row[field]
    if value is None:
        return "—"
    text = num(value, digits)
    std = row.get("seeds", {}).get("std", {}).get(field)
    if std is not None:
        text += f" ± {std:.{digits}f}"
    ci = row.get("ci95", {}).get(field)
    return text if ci is None else f"{text} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def ood_cell(row: dict[str, Any]) -> str:
    """% OOD retained, ``flat`` where the curve is flat, marked where the OOD set was seen in training."""
    if row["ood_retained"] is None:
        return "—"
    text = "flat" if row.get("flat_ood_curve") else cell(row, "ood_retained", 1)
    return text + (" (seen in training)" if row.get("ood_seen_in_training") else "")


def shift_cell(row: dict[str, Any]) -> str:
    """% retained under subpopulation shift, ``flat`` where the curve is flat or never above chance (§4.3)."""
    if row["subpop_retained"] is None:
        return "—"
    return "flat" if row.get("flat_shift_curve") else cell(row, "subpop_retained", 1)


def committed_cell(row: dict[str, Any]) -> str:
    """The committed layer (v3: ``a / b`` when the halves chose two), marked when its features were degenerate."""
    layer = row["committed_layer"]
    names = layer.removeprefix("varies: ").replace(", ", " / ").split(" / ") if layer else []
    degenerate = any(name in row.get("degenerate_layers", {}) for name in names)
    return (layer or "—") + (" (degenerate)" if degenerate else "")




MARKDOWN_SPECIAL = "\\`*_[]<>!|~&"  # parentheses and "#" are inert inside a table cell


def md(text: object) -> str:
    """Free text for a markdown table cell: every markup character escaped, line breaks flattened.

    Names, label tasks and layer names come from submissions; unescaped, a pipe would split a row and a
    bracket or angle bracket would inject links or HTML into the board a pull request changes."""
    flat = " ".join(str(text).split())
    return "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in flat)


# Label sets that no task file describes (model.yaml training.label_set), as the board names them.
LABEL_SETS = {"imagenet-1k": "ImageNet-1k"}


def labels_cell(row: dict[str, Any]) -> str:
    """What the encoder was trained on: the label granularity, the task or label set, and whether this task's
    subclasses were among its training labels."""
    source = row.get("label_task") or LABEL_SETS.get(row.get("label_set") or "")
    text = str(row["labels"]) + (f" ({source})" if source else "")
    return text + ("; subclasses seen in training" if row.get("subclasses_seen_in_training") else "")
