"""The tables of docs/imagenet-encoders.md, computed from the shipped submissions' results and per-sample files.

    python scripts/imagenet_report.py [--submissions submissions] [--figures docs/figures/imagenet] > tables.md

Per network: the committed and best layers with their depths, committed AMI, Ward AMI, reconstruction
accuracy, % OOD retained and the tunnel, each with its 95% interval. Then paired differences (same test
images, same bootstrap draws; docs/uncertainty.md) of committed AMI and reconstruction accuracy between the
pairs the page discusses. A submission with several training seeds enters with its seeds combined (the
two-level bootstrap the board uses). Pairs whose results are absent are listed as absent, not skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result, read_result
from subclassbench.uncertainty.bootstrap import combine_seeds, interval

TASKS = ("breeds-tiny16", "breeds-tiny16-shuffled")
IMAGENET = (
    "imagenet-mobilenetv1-coral",
    "imagenet-mobilenetv2-coral",
    "imagenet-efficientnet-lite0",
    "imagenet-efficientnet-lite1",
    "imagenet-efficientnet-lite2",
)
REFERENCES = {  # rows on the same task trained here (breeds-tiny16 only; the control has its own)
    "breeds-tiny16": (
        "tiny-cifar-resnet20-tiny16-fine",
        "tiny-cifar-resnet20-tiny16-coarse",
        "tiny-cifar-resnet20-tiny16-untrained",
        "tiny-vit-tiny-p4-tiny16-coarse",
    ),
    "breeds-tiny16-shuffled": (
        "tiny-cifar-resnet20-tiny16-shuffled-coarse",
        "tiny-cifar-resnet20-tiny16-shuffled-untrained",
    ),
}
PAIRS = (  # (a, b): the paired difference a − b
    ("imagenet-efficientnet-lite1", "imagenet-efficientnet-lite0"),
    ("imagenet-efficientnet-lite2", "imagenet-efficientnet-lite1"),
    ("imagenet-efficientnet-lite2", "imagenet-efficientnet-lite0"),
    ("imagenet-mobilenetv2-coral", "imagenet-mobilenetv1-coral"),
    ("imagenet-efficientnet-lite0", "imagenet-mobilenetv2-coral"),  # the two 224-px networks of the MobileNetV2 block
    ("imagenet-mobilenetv2-coral", "tiny-cifar-resnet20-tiny16-fine"),
    ("imagenet-mobilenetv2-coral", "tiny-cifar-resnet20-tiny16-coarse"),
    ("imagenet-mobilenetv2-coral", "tiny-cifar-resnet20-tiny16-untrained"),
    ("imagenet-mobilenetv2-coral", "tiny-vit-tiny-p4-tiny16-coarse"),
    ("imagenet-efficientnet-lite0", "tiny-cifar-resnet20-tiny16-fine"),
    ("imagenet-efficientnet-lite0", "tiny-cifar-resnet20-tiny16-untrained"),
)
METRICS = ("committed_ami", "committed_ward_ami", "committed_reconstruction_acc", "ood_retained")


def results_of(submissions: Path, name: str, task: str) -> list[Result]:
    """A submission's results on ``task``: the first seed's, then any further seeds'."""
    folder = submissions / name / "results"
    paths = [folder / f"{task}.json", *sorted(folder.glob(f"{task}.seed-*.json"))]
    return [read_result(path) for path in paths if path.is_file()]


def values(results: list[Result], metric: str) -> np.ndarray | None:
    """Estimate followed by its replicates, seeds combined; None without per-sample replicates."""
    stacked = []
    for result in results:
        found = result.samples.replicates.get(metric) if result.samples else None
        if found is None:
            return None
        stacked.append(np.asarray(found, dtype=np.float64))
    return stacked[0] if len(stacked) == 1 else combine_seeds(np.stack(stacked))


def shown(results: list[Result], metric: str, digits: int = 3) -> str:
    found = values(results, metric)
    if found is None:
        return "—"
    low, high = interval(found)
    return f"{found[0]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def layer_with_depth(result: Result, layer: str | None) -> str:
    if layer is None:
        return "—"
    names = result.layer_names
    depth = names.index(layer) / (len(names) - 1) if layer in names and len(names) > 1 else float("nan")
    return f"{layer} ({depth:.2f})"


def network_table(submissions: Path, task: str, names: tuple[str, ...]) -> list[str]:
    lines = [
        "| network | committed layer (depth) | best layer (depth) | AMI (committed) | Ward AMI | reconstruction acc "
        "| OOD retained % | tunnel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        results = results_of(submissions, name, task)
        if not results:
            lines.append(f"| {name} | not submitted | | | | | | |")
            continue
        first = results[0]
        summary = first.summary
        tunnel = (summary.get("transfer") or {}).get("tunnel")
        seeds = f" ({len(results)} seeds)" if len(results) > 1 else ""
        lines.append(
            f"| {name}{seeds} | {layer_with_depth(first, summary.get('committed_layer'))} | "
            f"{layer_with_depth(first, summary.get('best_layer'))} | {shown(results, 'committed_ami')} | "
            f"{shown(results, 'committed_ward_ami')} | {shown(results, 'committed_reconstruction_acc')} | "
            f"{shown(results, 'ood_retained', 1)} | "
            + ("none" if tunnel is None else f"{tunnel['start']} ({tunnel['strength']})")
            + " |"
        )
    return lines


def pairs_table(submissions: Path, task: str) -> list[str]:
    lines = [
        "| a − b | committed AMI | reconstruction acc | verdict (AMI) |",
        "|---|---|---|---|",
    ]
    for a, b in PAIRS:
        ra, rb = results_of(submissions, a, task), results_of(submissions, b, task)
        if not ra or not rb:
            lines.append(f"| {a} − {b} | absent | absent | — |")
            continue
        cells, verdict = [], "—"
        for metric in ("committed_ami", "committed_reconstruction_acc"):
            va, vb = values(ra, metric), values(rb, metric)
            if va is None or vb is None or va.shape != vb.shape:
                cells.append("not paired")
                continue
            diff = va - vb
            low, high = interval(diff)
            cells.append(f"{diff[0]:+.3f} [{low:+.3f}, {high:+.3f}]")
            if metric == "committed_ami":
                verdict = "a higher" if low > 0 else "b higher" if high < 0 else "not distinguishable"
        lines.append(f"| {a} − {b} | {cells[0]} | {cells[1]} | {verdict} |")
    return lines


def write_figures(submissions: Path, folder: Path) -> list[Path]:
    """One per-layer AMI figure per network: its curve on breeds-tiny16 and on the shuffled control, with bands."""
    import dataclasses

    from subclassbench.figures.drawing import curve_files, curve_from_result, write_figure

    written: list[Path] = []
    for name in IMAGENET:
        curves = []
        for task in TASKS:
            found = results_of(submissions, name, task)
            if found:
                # One colour per task: both curves are one model, which would otherwise share its colour.
                curve = dataclasses.replace(curve_from_result(found[0]), name=task, labels="fine", key=task)
                curves.append(curve)
        if curves:
            title = f"{name}: subclass AMI per layer (95% bands; ImageNet-1k labels seen in training)"
            files = curve_files(curves, title)
            written += write_figure({"png": files["png"]}, folder / name)  # the page shows the PNG
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=Path, default=Path("submissions"))
    parser.add_argument("--figures", type=Path, default=None, help="Also write each network's figure here.")
    args = parser.parse_args()
    try:
        if args.figures is not None:
            args.figures.mkdir(parents=True, exist_ok=True)
            for path in write_figures(args.submissions, args.figures):
                print(f"wrote {path}", file=sys.stderr)
        for task in TASKS:
            print(f"### {task}\n")
            print("\n".join(network_table(args.submissions, task, IMAGENET + REFERENCES[task])))
            print()
        print("### Paired differences on breeds-tiny16\n")
        print("\n".join(pairs_table(args.submissions, "breeds-tiny16")))
    except SubclassbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
