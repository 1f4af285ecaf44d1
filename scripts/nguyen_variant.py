"""Nguyen & Kornblith's clustering beside the protocol's, on trained run folders: where does each put the best layer?

The protocol pools each CNN map globally and L2-normalises before k-means (docs/protocol.md §2, §3.1); Nguyen &
Kornblith cluster the flattened feature maps as they are. This script scores every layer of each run both ways,
with the protocol's k-means (faiss, k = subclasses within each true superclass, 10 restarts, 100 iterations,
seed 0) and the mean AMI over superclasses, and prints the best layer and its relative depth per run and
variant. It measures a departure (protocol §5); it is not a protocol metric. The computation is
subclassbench/reproductions/variants.py, which the nguyen2023-architecture report also shows.

    python scripts/nguyen_variant.py RUN_FOLDER [RUN_FOLDER ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from subclassbench.reproductions.variants import VARIANTS, curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | variant | AMI per layer | best layer (depth) |")
    print("|---|---|---|---|")
    for folder in args.runs:
        found = curves(folder)
        for variant in VARIANTS:
            curve = found[variant]
            amis = ", ".join(f"{a:.3f}" for a in curve.ami)
            print(f"| {folder.name} | {variant} | {amis} | {curve.best_layer} ({curve.best_depth:.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
