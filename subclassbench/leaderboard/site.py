"""The browsable leaderboard: ``leaderboard/site/`` (index.html, app.js, style.css), a static page.

Rendered from the parsed ``leaderboard.json`` document — the same data as the
markdown board, with the same number formatting — so the site can never
disagree with it. The data is embedded in ``index.html`` as a
``<script type="application/json">`` block because a page opened from
``file://`` may not fetch a JSON file next to it (Chromium blocks it); the page
needs no server and no network. ``app.js`` builds the table, the sorting, the
filters and the per-layer curve viewer from that block with ``textContent``
and ``setAttribute`` only, so a submission's strings are never parsed as HTML.

Every file is a pure function of the board (byte-identical for the same
submissions), so ``leaderboard build --check`` catches a stale or hand-edited
site like any other leaderboard file.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from typing import Any

from subclassbench.errors import SubclassbenchError
from subclassbench.figures.drawing import model_key, model_style
from subclassbench.leaderboard.cells import cell, committed_cell, labels_cell, num, ood_cell, shift_cell

SITE_DIR = "site"
ASSETS = ("app.js", "style.css")  # copied as they are
TEMPLATE = "index.html"
DATA_PLACEHOLDER = "@BOARD_DATA@"
DATA_VERSION = 1  # of the embedded document's layout, which app.js reads


# Table columns, in order: id (th/td data-col), header, kind ("number" sorts numerically, "text" by code
# point), the direction of the first click (metrics: best first), and a header tooltip.
COLUMNS: list[dict[str, str]] = [
    {"id": "rank", "label": "rank", "kind": "number", "first": "asc",
     "title": "Rank within the task. A rank followed by = is shared: a paired bootstrap over the test images "
              "cannot tell those rows apart (docs/uncertainty.md)"},
    {"id": "model", "label": "model", "kind": "text", "first": "asc", "title": "Submission name"},
    {"id": "ami", "label": "AMI (committed)", "kind": "number", "first": "desc",
     "title": "Subclass AMI at the committed layer [95% bootstrap interval]"},
    {"id": "recon", "label": "recon. acc", "kind": "number", "first": "desc",
     "title": "Reconstruction accuracy at the committed layer [95% interval]"},
    {"id": "ood", "label": "OOD retained %", "kind": "number", "first": "desc",
     "title": "OOD retained % over class-disjoint OOD sets [95% interval]; — when the task has none"},
    {"id": "layer", "label": "committed layer", "kind": "text", "first": "asc",
     "title": "Layer chosen on the validation split; its numbers are on the evaluation split"},
    {"id": "labels", "label": "labels", "kind": "text", "first": "asc",
     "title": "Label granularity the encoder was trained on (fine encoders saw the subclass labels)"},
    {"id": "architecture", "label": "architecture", "kind": "text", "first": "asc",
     "title": "Encoder source and architecture (the encoder spec without its weights tag)"},
    {"id": "task", "label": "task", "kind": "text", "first": "asc", "title": "Benchmark task"},
]  # fmt: skip


def render_site(board: dict[str, Any]) -> dict[str, bytes]:
    """The site's files, ``site/<name>`` → bytes, from a parsed leaderboard.json document."""
    document = site_document(board)
    template = _asset(TEMPLATE).decode()
    if template.count(DATA_PLACEHOLDER) != 1:  # a broken package, not a user error; say so loudly
        raise SubclassbenchError(f"site template {TEMPLATE} must contain {DATA_PLACEHOLDER} exactly once")
    files = {f"{SITE_DIR}/{TEMPLATE}": template.replace(DATA_PLACEHOLDER, embed_json(document)).encode()}
    files |= {f"{SITE_DIR}/{name}": _asset(name) for name in ASSETS}
    return files


def embed_json(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: ASCII only, and ``<``, ``>``, ``&``
    written as ``\\u003c``/``\\u003e``/``\\u0026`` so no data can close the block (``</script>``) or open a
    comment; JSON.parse reads the escapes back to the same characters."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def site_document(board: dict[str, Any]) -> dict[str, Any]:
    """What app.js renders: the board's metadata, the columns, one entry per current row, the stale rows."""
    protocol = board.get("protocol", {})
    tasks = board.get("tasks", {})
    shared = Counter((row["task"], row.get("rank")) for rows in tasks.values() for row in rows)  # rows per rank
    return {
        "data_version": DATA_VERSION,
        "leaderboard_version": board.get("leaderboard_version"),
        "protocol_version": protocol.get("version"),
        "protocol_fingerprint": (protocol.get("fingerprint") or "")[:12],
        "content_sha256": board.get("content_sha256"),
        "columns": COLUMNS,
        "default_task": default_task(board),
        "rows": [site_row(row, shared[(row["task"], row.get("rank"))]) for rows in tasks.values() for row in rows],
        "stale": [
            {"submission": r["submission"], "task": r["task"], "reason": r.get("stale") or ""}
            for r in board.get("stale", [])
        ],
    }


def default_task(board: dict[str, Any]) -> str | None:
    """The task the page opens on: ranks and AMI compare within a task, so the first view shows one (the task
    with the most rows, ties by name); a selector and the URL (``#task=…``) choose another, or all."""
    tasks = board.get("tasks", {})
    return min(tasks, key=lambda name: (-len(tasks[name]), name)) if tasks else None


def site_row(row: dict[str, Any], sharing: int = 1) -> dict[str, Any]:
    """One table row: per column a sort value (``v``, null sorts last), the text shown (``t``) and optionally a
    tooltip (``title``), the filter keys, the curve, its colour and the details panel. Texts come from the
    markdown board's formatters. ``sharing``: how many rows of the task hold this row's rank."""
    labels_text = labels_cell(row)
    seeds = row.get("seeds", {}).get("n")
    rank = row.get("rank")
    rank_cell: dict[str, Any] = {"v": rank, "t": "—" if rank is None else str(rank)}
    if rank is not None and sharing > 1:  # explained where it is shown, not only in the intro
        rank_cell["t"] += "="
        rank_cell["title"] = (
            f"rank {rank} is shared by {sharing} rows: a paired bootstrap over the test images cannot tell them apart"
        )
    cells = {
        "rank": rank_cell,
        "task": {"v": row["task"], "t": row["task"]},
        "model": {"v": row["submission"], "t": row["submission"] + (f" ({seeds} seeds)" if seeds else "")},
        "architecture": {"v": architecture(row["encoder"]), "t": architecture(row["encoder"])},
        "labels": {"v": row["labels"], "t": labels_text},
        "layer": {"v": row.get("committed_layer"), "t": committed_cell(row)},
        "ami": {"v": row.get("committed_ami"), "t": cell(row, "committed_ami")},
        "recon": {"v": row.get("committed_reconstruction_acc"), "t": cell(row, "committed_reconstruction_acc")},
        "ood": {"v": row.get("ood_retained"), "t": ood_cell(row)},
    }
    return {
        "key": f"{row['task']}/{row['submission']}",
        "task": row["task"],
        "model": row["submission"],
        "colour": model_style(model_key(row["encoder"], row.get("weights_sha256")))[0],  # the board figures' colour
        "filters": {"task": row["task"], "labels": row["labels"], "architecture": architecture(row["encoder"])},
        "cells": cells,
        "curve": [
            {"layer": c["layer"], "depth": c["depth"], "ami": c["ami"], **({"ci95": c["ci95"]} if "ci95" in c else {})}
            for c in row.get("curve", [])
        ],
        "committed_layers": _committed_layers(row.get("committed_layer")),
        "best_layer": row.get("best_layer"),
        "details": _details(row),
    }


def architecture(spec: str) -> str:
    """The encoder spec without its weights tag (``builtin:cifar_resnet20.cifar10_5_coarse`` →
    ``builtin:cifar_resnet20``), parsed by the source registry that knows each source's tag separator."""
    from subclassbench.encoders.base import EncoderSpec  # the board build has imported it already (validation)

    try:
        parsed = EncoderSpec.parse(spec)
    except SubclassbenchError:  # a source this installation lacks: show the spec as it is
        return spec
    return f"{parsed.source}:{parsed.name}"


def _committed_layers(layer: str | None) -> list[str]:
    """The layers to mark on the curve: one, each of a seed group's ``varies: a, b``, or both halves' ``a / b``."""
    if not layer:
        return []
    prefix = "varies: "
    parts = layer[len(prefix) :].split(", ") if layer.startswith(prefix) else [layer]
    return list(dict.fromkeys(n for part in parts for n in part.split(" / ")))  # v3: "a / b", the halves' choices


def _details(row: dict[str, Any]) -> list[list[str]]:
    """Label/text pairs shown beside the curve: the numbers the table has no room for."""
    vs = row.get("vs_above")
    tunnel = row.get("tunnel")
    pairs = [
        ["encoder", row["encoder"]],
        ["best layer (evaluation split)", f"{row.get('best_layer') or '—'}: {cell(row, 'best_ami')}"],
        ["gap (best − committed)", num(row.get("gap"))],
        ["Ward AMI", cell(row, "committed_ward_ami")],
        ["within-superclass acc (oracle)", cell(row, "committed_within_superclass_acc")],
        ["OOD sets", ", ".join(row.get("ood_sets") or []) or "—"],
        ["tunnel", "—" if tunnel is None else f"{tunnel['start']} ({tunnel['strength']})"],
        ["subpop. shift retained %", shift_cell(row)],
        [
            "committed AMI − row above",
            "—" if vs is None else f"{vs['difference']:+.4f} [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}]",
        ],
        ["test images", str(row.get("n_samples", "—"))],
        ["data", "canonical" if row.get("canonical") else "non-canonical (ranked after canonical rows)"],
        ["license", str(row.get("license") or "—")],
        ["result", row.get("result") or "—"],
    ]
    if "seeds" in row:
        pairs.insert(1, ["training seeds", f"{row['seeds']['n']} (numbers: mean ± std across seeds)"])
    return pairs


def _asset(name: str) -> bytes:
    return resources.files(__package__ or "subclassbench.leaderboard").joinpath("site_assets", name).read_bytes()
