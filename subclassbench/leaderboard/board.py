"""The leaderboard: submissions → per-task tables (markdown, JSON), per-layer figures (PNG, SVG, PDF), a changelog.

Built only from ``submissions/``; byte-identical for the same submissions, so
CI can regenerate it and ``--check`` can catch a hand edit. The leaderboard
version is the protocol version: results of another protocol (or an older
task version) are *stale* and listed apart, never ranked with current ones.
Rows are ranked by the AMI at the committed layer — chosen on the task's
validation split, reported on its evaluation split (Brain-Score's practice) —
with the best-on-test layer and the gap shown beside it.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.core.files import atomic_write_many, locked
from subclassbench.core.hashing import canonical_json, sha256_text
from subclassbench.errors import SubclassbenchError, first_line
from subclassbench.figures.drawing import FORMATS as FIGURE_SUFFIXES
from subclassbench.figures.drawing import read_digest
from subclassbench.leaderboard.cells import cell, committed_cell, labels_cell, md, num, ood_cell, shift_cell
from subclassbench.leaderboard.site import render_site
from subclassbench.leaderboard.submissions import validate_tree
from subclassbench.results.result import Result
from subclassbench.scoring.protocol import PROTOCOL_VERSION, protocol_fingerprint
from subclassbench.uncertainty.bootstrap import combine_seeds, interval
from subclassbench.uncertainty.ranking import Contender, difference, tie_aware_ranks

LEADERBOARD_VERSION = PROTOCOL_VERSION
CHANGELOG = "CHANGELOG.md"
CHANGELOG_HEADER = (
    "# Leaderboard changelog\n\n"
    "One entry per change of the leaderboard's content, newest first, added by `subclassbench leaderboard build`.\n"
)


# Row field → the result's replicate name (summary.ci95 key) that gives its interval.
CI_FIELDS = {
    "committed_ami": "committed_ami",
    "committed_ward_ami": "committed_ward_ami",
    "committed_reconstruction_acc": "committed_reconstruction_acc",
    "committed_within_superclass_acc": "committed_within_superclass_acc",
    "best_ami": "best_ami",
    "ood_retained": "ood_retained",
    "subpop_retained": "subpop_shift_retained",
}
RANKED_BY = "committed_ami"


def _seed_row(folder: Path, model: dict[str, Any], results: list[Result], stale: str | None) -> dict[str, Any]:
    """One row per (submission, task): a single result, or the mean over a submission's training seeds."""
    rows = [_row(folder, model, result, stale) for result in results]
    row = rows[0]
    stored = results[0].summary.get("ci95") or {}
    row["ci95"] = {field: list(stored[name]) for field, name in CI_FIELDS.items() if name in stored}
    if len(results) > 1:
        row["seeds"] = {"n": len(results), "std": {}}
        for field in ["gap", "last_ami", *CI_FIELDS]:
            values = [r[field] for r in rows]
            if any(v is None for v in values):
                continue
            row[field] = float(np.mean(values))
            if field in CI_FIELDS:
                row["seeds"]["std"][field] = float(np.std(values, ddof=1))
        row["ci95"] = {}
        for field, name in CI_FIELDS.items():
            stacked = _all_replicates(results, name)
            if stacked is not None:
                row["ci95"][field] = interval(combine_seeds(np.stack(stacked)))
        committed = {r["committed_layer"] for r in rows}
        if len(committed) > 1:
            row["committed_layer"] = "varies: " + ", ".join(sorted(c or "—" for c in committed))
        layer_reps = _all_replicates(results, "ami", per_layer=True)
        row["curve"] = [
            {key: value for key, value in point.items() if key != "ci95"}
            | {"ami": float(np.mean([r["curve"][i]["ami"] for r in rows]))}
            | ({} if layer_reps is None else {"ci95": _seed_band(layer_reps, i)})
            for i, point in enumerate(row["curve"])
        ]
    # Ranked on the same replicates its interval comes from (seeds combined; one seed: its own).
    pairings = {_pairing(result) for result in results}
    reps = _all_replicates(results, CI_FIELDS[RANKED_BY])
    combined = None
    if len(pairings) == 1 and reps is not None:
        combined = combine_seeds(np.stack(reps))
    row["_contender"] = Contender(row[RANKED_BY], combined, pairings.pop() if combined is not None else None)
    return row


def _all_replicates(results: list[Result], name: str, per_layer: bool = False) -> list[np.ndarray] | None:
    """Every result's bootstrap replicates of ``name`` (``per_layer``: its per-layer ones), or None when a
    result lacks them."""
    out: list[np.ndarray] = []
    for r in results:
        found = None
        if r.samples:
            found = (r.samples.layer_replicates if per_layer else r.samples.replicates).get(name)
        if found is None:
            return None
        out.append(found)
    return out


def _seed_band(layer_reps: list[np.ndarray], layer: int) -> list[float]:
    return interval(combine_seeds(np.stack([reps[layer] for reps in layer_reps])))


def _pairing(result: Result) -> str | None:
    """What a result's replicates were drawn from: equal strings, paired replicates (None: no intervals)."""
    record = result.get("uncertainty") or {}
    digest = (record.get("digests") or {}).get("evaluation")
    # The method too: replicates centred one way and not the other differ by an offset, not by the images.
    return None if digest is None else f"{digest}|{record.get('resamples')}|{record.get('method')}"


def _row(folder: Path, model: dict[str, Any], result: Result, stale: str | None) -> dict[str, Any]:
    summary = result.summary
    transfer = summary.get("transfer")
    curve = [
        {
            "layer": layer["name"],
            "depth": layer["depth"],
            "ami": layer["clusterability"]["ami"],
            **({"ci95": layer["ci95"]["ami"]} if "ami" in layer.get("ci95", {}) else {}),
        }
        for layer in result.layers
        if "clusterability" in layer
    ]
    flagged = {layer["name"]: layer["flags"] for layer in result.layers if layer.get("flags")}
    extra: dict[str, Any] = {}
    if flagged:  # only when present, so boards without degenerate layers stay byte-identical
        extra["degenerate_layers"] = flagged
    if transfer is not None and transfer.get("flat_ood_curve"):
        extra["flat_ood_curve"] = True
    if result.flat_shift("subpop_shift"):  # §4.3: a flat or below-chance curve has no meaningful % retained
        extra["flat_shift_curve"] = True
    seen = [] if transfer is None else [s["name"] for s in transfer["ood_sets"] if _seen(s, model)]
    if seen:  # the encoder was trained on an OOD set's classes: its OOD numbers are not OOD
        extra["ood_seen_in_training"] = seen
    label_set = model["training"].get("label_set")
    if label_set:  # only when present, so boards without label sets stay byte-identical
        extra["label_set"] = label_set
        if _in_label_set(label_set, result.task_name):
            extra["subclasses_seen_in_training"] = True
    ward = result.committed_ward
    shift = None if transfer is None else transfer["subpopulation_shift"]
    # The BREEDS measure: the ID probe, unchanged, on the new subpopulations (the refit curve is in the JSON).
    shift_kind = None if shift is None or "subpop_shift" not in shift else "subpop_shift"
    return {
        **extra,
        "submission": folder.name,
        "task": result.task_name,
        "task_version": result.task["version"],
        "encoder": model["encoder"]["spec"],
        "weights_sha256": result.weights_sha256,  # with the spec, a model's identity: its colour in every figure
        "labels": model["training"]["labels"],
        "label_task": model["training"].get("label_task"),
        "license": model["license"],
        "committed_layer": summary.get("committed_layer"),
        "committed_ami": summary.get("committed_ami"),
        "committed_reconstruction_acc": summary.get("committed_reconstruction_acc"),
        "committed_within_superclass_acc": summary.get("committed_within_superclass_acc"),
        "committed_ward_ami": None if ward is None else ward["ami"],
        "selection_split": summary.get("selection", {}).get("split"),
        "best_layer": summary.get("best_layer"),
        "best_ami": summary.get("best_ami"),
        "gap": summary.get("committed_gap"),
        "last_ami": summary.get("last_ami"),
        "ood_retained": None if transfer is None else transfer["ood_retained"],
        "ood_sets": [] if transfer is None else [s["name"] for s in transfer["ood_sets"]],
        "tunnel": None if transfer is None else transfer["tunnel"],
        "subpop_retained": None if shift is None or shift_kind is None else shift[shift_kind]["retained"],
        "n_samples": result.task["n_samples"],
        "canonical": result.canonical,
        "protocol_version": result["protocol"]["version"],
        "task_fingerprint": result.task["fingerprint"],
        "result": f"submissions/{folder.name}/results/{result.task_name}.json",
        "stale": stale,
        "curve": curve,
    }


WNID = re.compile(r"n\d{8}")


def _in_label_set(label_set: str, task_name: str) -> bool:
    """Whether every subclass of a task is a class of ``label_set``. ImageNet-1k: subclasses that are WordNet ids
    with an ImageNet-1k class index (0-999), as Tiny ImageNet's and BREEDS's are."""
    from subclassbench.tasks.task import load_task

    if label_set != "imagenet-1k":
        return False
    try:
        task = load_task(task_name)
    except SubclassbenchError:
        return False
    subclasses = [sub for sup in task.superclasses for sub in sup.subclasses]
    # An ImageNet-1k class is a WordNet id with its ImageNet-1k index, whatever source reads its images.
    return all(WNID.fullmatch(str(sub.id)) and sub.index is not None and 0 <= sub.index < 1000 for sub in subclasses)


def _seen(ood_set: dict[str, Any], model: dict[str, Any]) -> bool:
    """Whether an OOD set's classes were in the encoder's training data: the result's own record (from the
    training card), or else the task model.yaml says the encoder was trained on."""
    if ood_set.get("seen_in_training") is not None:
        return bool(ood_set["seen_in_training"])
    label_set = model["training"].get("label_set")
    if label_set and _in_label_set(label_set, ood_set["task"]):
        return True
    label_task = model["training"].get("label_task")
    if not label_task:
        return False
    from subclassbench.tasks.task import load_task

    try:
        return bool(load_task(label_task, by_name_only=True).class_keys() & load_task(ood_set["task"]).class_keys())
    except SubclassbenchError:
        return False


def collect(submissions: Path) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Current rows per task (ranked) and stale rows; any invalid submission stops the build."""
    reports = validate_tree(submissions)
    errors = [e for r in reports for e in r.errors]
    if errors:
        more = f" (and {len(errors) - 1} more; run `subclassbench validate`)" if len(errors) > 1 else ""
        raise SubclassbenchError(f"cannot build the leaderboard: {errors[0]}{more}")
    current: dict[str, list[dict[str, Any]]] = {}
    stale: list[dict[str, Any]] = []
    for report in reports:
        assert report.model is not None  # a report without errors has read its model.yaml
        groups: dict[str, list[Result]] = {}
        for result in sorted(report.results, key=lambda r: _seed_order(report.seed(r))):
            groups.setdefault(result.task_name, []).append(result)
        for results in groups.values():
            reasons = [report.stale_reasons[r.path] for r in results if r.path in report.stale_reasons]
            row = _seed_row(report.folder, report.model, results, reasons[0] if reasons else None)
            if reasons:
                row.pop("_contender")
            (stale.append(row) if reasons else current.setdefault(row["task"], []).append(row))
    for rows in current.values():
        rows.sort(key=_rank_key)
        contenders = [row.pop("_contender") for row in rows]
        rows[0]["vs_above"] = None
        for row, rank in zip(rows, tie_aware_ranks(contenders), strict=True):
            row["rank"] = rank
        for below, c_above, c_below in zip(rows[1:], contenders, contenders[1:], strict=False):
            found = difference(c_above, c_below)
            below["vs_above"] = None if found is None else {"difference": found[0], "ci95": found[1]}
    stale.sort(key=lambda r: (r["task"], r["submission"]))
    return dict(sorted(current.items())), stale


def _seed_order(seed: int | None) -> int:
    return -1 if seed is None else seed  # the first seed (encoder.weights) leads its row


def _rank_key(row: dict[str, Any]) -> tuple[Any, ...]:
    # Non-canonical data and rows without a committed layer rank after the rest.
    committed = row["committed_ami"]
    return (not row["canonical"], committed is None, -(committed or 0.0), -(row["best_ami"] or 0.0), row["submission"])


# --------------------------------------------------------------------------- rendering



def _table(rows: list[dict[str, Any]], with_rank: bool = True) -> str:
    from tabulate import tabulate

    headers = ["rank"] if with_rank else []
    headers += ["encoder", "labels", "committed layer", "AMI (committed)", "best layer", "AMI (best)", "gap"]
    headers += ["Ward AMI", "reconstruction acc", "within-superclass acc (oracle)", "OOD retained %", "tunnel"]
    headers += ["subpop. shift retained %", "result"]
    body = []
    for r in rows:
        labels = md(labels_cell(r))
        seeds = f" ({r['seeds']['n']} seeds)" if "seeds" in r else ""
        line = [r["rank"]] if with_rank else []
        line += [
            f"[{r['submission']}](../submissions/{r['submission']}/model.yaml){seeds}",
            labels,
            md(committed_cell(r)),
            cell(r, "committed_ami"),
            md(r["best_layer"] or "—"),
            cell(r, "best_ami"),
            num(r["gap"]),
            cell(r, "committed_ward_ami"),
            cell(r, "committed_reconstruction_acc"),
            cell(r, "committed_within_superclass_acc"),
            ood_cell(r),
            "—" if r["tunnel"] is None else md(f"{r['tunnel']['start']} ({r['tunnel']['strength']})"),
            shift_cell(r),
            f"[json](../{r['result']})" + ("" if r["canonical"] else " (non-canonical data)"),
        ]
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _ties(rows: list[dict[str, Any]]) -> list[str]:
    """Each adjacent pair: the paired difference of committed AMI and whether it separates the two rows."""
    lines = []
    for above, below in itertools.pairwise(rows):
        found = below.get("vs_above")
        if found is None:
            verdict = "not paired (other images or no per-sample file): ranked by point values"
            lines.append(f"- {above['submission']} vs {below['submission']}: {verdict}")
            continue
        low, high = found["ci95"]
        verdict = "distinguishable" if low > 0 else "not distinguishable"
        lines.append(
            f"- {above['submission']} − {below['submission']}: {found['difference']:+.4f} "
            f"[{low:+.4f}, {high:+.4f}] — {verdict}"
        )
    return lines


def _plots(task: str, rows: list[dict[str, Any]], existing: Path | None = None) -> dict[str, bytes]:
    """The task's per-layer AMI figure, ``{suffix: bytes}`` (PNG, SVG, PDF), each carrying its data digest.

    Files already at ``existing``.<suffix> that carry the same digest are returned as they are, unrendered:
    the build compares figures by digest anyway, and rendering all three formats is most of a build's time."""
    from subclassbench.figures.drawing import curve_files, curve_from_row, curve_payload_digest

    title = f"{task}: subclass AMI per layer (protocol v{LEADERBOARD_VERSION})"
    curves = [curve_from_row(r) for r in rows]
    if existing is not None:
        digest = curve_payload_digest(curves, title)
        paths = {s: existing.parent / f"{existing.name}.{s}" for s in FIGURE_SUFFIXES}
        if all(path.is_file() for path in paths.values()):
            kept = {s: path.read_bytes() for s, path in paths.items()}
            if all(read_digest(data) == digest for data in kept.values()):
                return kept
    return curve_files(curves, title)


def render(
    submissions: Path,
    previous_changelog: str | None,
    previous_board: dict[str, Any] | None = None,
    out: Path | None = None,
) -> dict[str, bytes]:
    """Every leaderboard file, relative path → bytes (figures already in ``out`` with the same digest reused)."""
    current, stale = collect(submissions)
    ranked = [r for rows in current.values() for r in rows]
    content = {"tasks": current, "stale": stale}
    digest = sha256_text(canonical_json(content))[:16]
    document = {
        "leaderboard_version": LEADERBOARD_VERSION,
        "protocol": {"version": PROTOCOL_VERSION, "fingerprint": protocol_fingerprint()},
        "content_sha256": digest,
        **content,
    }
    board = json.dumps(document, indent=2, sort_keys=True, allow_nan=False)  # never a bare NaN in the board
    files: dict[str, bytes] = {"leaderboard.json": (board + "\n").encode()}
    lines = [
        "<!-- Generated by `subclassbench leaderboard build` from submissions/; do not edit by hand. -->",
        f"# subclassbench leaderboard v{LEADERBOARD_VERSION}",
        "",
        f"Protocol v{PROTOCOL_VERSION} (fingerprint `{protocol_fingerprint()[:12]}`), content `{digest}`. "
        "Rows are ranked by subclass AMI at the **committed layer**, cross-fitted on the evaluation split: the "
        "layer best on one fixed hash half is scored on the other, both ways, and the two scores averaged "
        "(`a / b` when the halves chose different layers), so no image both chooses and scores a layer. The best "
        "layer on the whole evaluation split and the gap (each half's best minus the committed AMI) are shown "
        "beside it but never used for ranking. Numbers read `value [low, high]`: "
        "the 95% bootstrap interval over the test images (stratified by superclass, B = 1000, seeded); rows "
        "with several training seeds show `mean ± std` across seeds and an interval that also resamples the "
        "seeds. A row's **rank** is 1 + the number of rows whose committed AMI is higher with a paired "
        "bootstrap interval of the difference above zero, so rows that cannot be told apart share a rank "
        "(see [docs/uncertainty.md](../docs/uncertainty.md)). At the committed layer: Ward AMI "
        "(Nguyen & Kornblith's algorithm at k = subclasses); reconstruction accuracy (Yang et al.: predicted "
        "superclass, then the nearest train-fit cluster); the within-superclass accuracy, an oracle that is "
        "given the true superclass. OOD retained % (Harun et al.'s mean over OOD sets) and the tunnel (on the "
        "mean OOD curve) are over class-disjoint OOD sets (— when the task has none); the subpopulation shift "
        "(same classes, new subclasses) is not OOD and is shown apart. Label granularity says what the encoder "
        "was trained on: `fine` encoders saw the "
        "subclass labels. The protocol v2 and v1 boards are archived in [v2/](v2/README.md) and "
        "[v1/](v1/README.md). See "
        "[docs/protocol.md](../docs/protocol.md) and [docs/submitting.md](../docs/submitting.md).",
        "",
    ]
    for task, rows in current.items():
        lines += [f"## {task}", "", _table(rows), ""]
        if len(rows) > 1:
            lines += ["Committed AMI, each row minus the next (paired bootstrap over the shared test images):", ""]
            lines += [*_ties(rows), ""]
        figure = f"v{LEADERBOARD_VERSION}/{task}"
        lines += [
            f"![{task} per-layer AMI]({figure}.png)",
            "",
            f"Also as [SVG]({figure}.svg) and [PDF]({figure}.pdf).",
            "",
        ]
        existing = None if out is None else out / figure
        files.update({f"{figure}.{suffix}": data for suffix, data in _plots(task, rows, existing).items()})
    if not current:
        lines += ["No current results yet.", ""]
    if stale:
        lines += [
            "## Stale results (not ranked)",
            "",
            "Computed under another protocol or task version; re-run `subclassbench submit` to bring them back.",
            "",
        ]
        lines += [f"- `{r['submission']}` on `{r['task']}`: {md(r['stale'])}" for r in stale]
        lines.append("")
    files["README.md"] = "\n".join(lines).encode()
    before = None
    if previous_board and previous_board.get("content_sha256") != digest:
        before = [r for rows in previous_board.get("tasks", {}).values() for r in rows]
    files[CHANGELOG] = _changelog(previous_changelog, digest, ranked, before).encode()
    return files


def _describe_row(r: dict[str, Any]) -> str:
    ood = "" if r["ood_retained"] is None else f", OOD retained {num(r['ood_retained'], 1)}%"
    ood += "" if r["tunnel"] is None else f", tunnel {r['tunnel']['strength']}"
    return f"{r['task']}: {r['submission']} (rank {r['rank']}, committed AMI {num(r['committed_ami'])}{ood})"


def _changelog(
    previous: str | None, digest: str, rows: list[dict[str, Any]], before: list[dict[str, Any]] | None
) -> str:
    """Add an entry for a new content digest: rows added, changed and removed since the last build."""
    text = previous if previous else CHANGELOG_HEADER
    if f"`{digest}`" in text:
        return text
    if before is None:  # first entry (or a changelog started afresh): the whole board
        lines = [f"- {_describe_row(r)}" for r in rows]
    else:
        lines = row_changes(before, rows)
    empty = "- (no current results)" if not rows else "- no row's numbers changed (the board's fields or layout did)"
    listing = "\n".join(lines) or empty
    entry = f"\n## v{LEADERBOARD_VERSION} · content `{digest}`\n\n{listing}\n"
    head, sep, rest = text.partition("\n## ")
    return head.rstrip("\n") + "\n" + entry + (("\n## " + rest) if sep else "")


def row_changes(before: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """One markdown list item per row added, changed or removed between two boards' rows."""
    old = {(r["task"], r["submission"]): r for r in before}
    new = {(r["task"], r["submission"]): r for r in rows}
    watched = ("committed_ami", "best_ami", "ood_retained", "task_fingerprint", "rank")
    lines = [f"- added {_describe_row(r)}" for k, r in new.items() if k not in old]
    lines += [
        f"- changed {_describe_row(r)}"
        for k, r in new.items()
        if k in old and any(old[k].get(w) != r.get(w) for w in watched)
    ]
    lines += [f"- removed {t}: {s}" for (t, s) in old if (t, s) not in new]
    # Intervals can move alone (a new bootstrap method recomputed from the per-sample files): say which rows.
    moved = [
        f"{t}: {s}"
        for (t, s), r in new.items()
        if (t, s) in old
        and not any(old[(t, s)].get(w) != r.get(w) for w in watched)
        and old[(t, s)].get("ci95") != r.get("ci95")
    ]
    if moved:
        lines.append(f"- intervals changed ({len(moved)} rows): {', '.join(moved)}")
    return lines


def preview(submissions: Path, out: Path) -> str:
    """What a build of ``out`` from ``submissions`` would change, as markdown (nothing is written).

    A pull request adds its submission only; main's workflow regenerates and commits the board after the merge.
    CI shows this preview as the pull request's job summary instead of requiring the regenerated files."""
    files, orphans = _render_into(submissions, out)
    rows = [r for task_rows in json.loads(files["leaderboard.json"])["tasks"].values() for r in task_rows]
    previous = _previous_board(out / "leaderboard.json")
    before = [] if previous is None else [r for task_rows in previous.get("tasks", {}).values() for r in task_rows]
    changes = row_changes(before, rows)
    differing = [path for path, data in files.items() if not _same(out / path, data)] + orphans
    lines = [
        "### Leaderboard preview",
        "",
        f"The board builds from `{submissions}`: {len(rows)} rows on {len({r['task'] for r in rows})} tasks.",
        "",
        *(changes or ["- no row changes"]),
        "",
        f"{len(differing)} file(s) under `{out}/` differ from a fresh build; a pull request need not include them: "
        "main's workflow regenerates and commits the board after merging.",
    ]
    return "\n".join(lines) + "\n"


def build(submissions: Path, out: Path, check: bool = False) -> list[str]:
    """Regenerate ``out`` (or with ``check``, list how it differs); returns the paths written or differing.

    Under a lock on ``out``, every file is written or none is (a failed build
    keeps the previous leaderboard and its changelog).
    """
    if check:
        files, orphans = _render_into(submissions, out)
        return [path for path, data in files.items() if not _same(out / path, data)] + orphans
    with locked(out):
        files, orphans = _render_into(submissions, out)
        changed = {out / path: data for path, data in files.items() if not _same(out / path, data)}
        atomic_write_many(changed)
        for old in orphans:  # a task that no longer has rows
            (out / old).unlink()
    return [str(p.relative_to(out)) for p in changed] + orphans


def _render_into(submissions: Path, out: Path) -> tuple[dict[str, bytes], list[str]]:
    """The files a build of ``out`` writes, and the plots in ``out`` that no task has any more."""
    previous_board = _previous_board(out / "leaderboard.json")
    files = render(submissions, _previous_changelog(out / CHANGELOG), previous_board, out)
    # The browsable site (site/), from the very leaderboard.json just rendered: the two cannot disagree.
    files |= render_site(json.loads(files["leaderboard.json"]))
    plots = out / f"v{LEADERBOARD_VERSION}"
    found = sorted(p for suffix in FIGURE_SUFFIXES for p in plots.glob(f"*.{suffix}"))
    orphans = [p for p in found if p.relative_to(out).as_posix() not in files]
    return files, [p.relative_to(out).as_posix() for p in orphans]


def _previous_board(path: Path) -> dict[str, Any] | None:
    """The committed leaderboard.json, or None when absent or unreadable (a merge conflict, a hand edit):
    the build then starts the changelog entry from the whole board."""
    try:
        board = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    tasks = board.get("tasks") if isinstance(board, dict) else None
    rows_ok = isinstance(tasks, dict) and all(
        isinstance(rows, list) and all(isinstance(r, dict) and {"task", "submission"} <= set(r) for r in rows)
        for rows in tasks.values()
    )
    return board if rows_ok else None


def _previous_changelog(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SubclassbenchError(f"cannot read {path} ({first_line(exc, 80)}); restore it from git") from None


def _same(path: Path, data: bytes) -> bool:
    if not path.is_file():
        return False
    if path.suffix.lstrip(".") in FIGURE_SUFFIXES:  # pixels and glyph outlines may differ across font builds;
        # the plotted data (and the figures' drawing version, part of the digest) may not
        found = read_digest(path.read_bytes())
        return found is not None and found == read_digest(data)
    return path.read_bytes() == data
