"""Measure training-image leakage in layer commitment: every shipped CIFAR-10 and Tiny ImageNet result, its
validation-committed layer against the layer cross-fitted on the evaluation split (results/commitment.py).

Prints a markdown table and the counts the protocol decision reads: how often the committed layer changes,
how far the committed AMI moves, and whether it leaves its own 95% interval. Reads only the results and their
per-sample files: no features, seconds per result.

    python scripts/layer_commitment.py --submissions DIR > /tmp/commitment.md

DIR holds protocol v2 results with their per-sample files: since protocol v3 (which cross-fits the layer
itself) the shipped ones are v3, so check out the last v2 commit (``git worktree add /tmp/v2 4f8c24d``) and pass
``--submissions /tmp/v2/submissions``. A v3 result is refused with one line saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from subclassbench.errors import SubclassbenchError
from subclassbench.results.commitment import crossfit
from subclassbench.results.result import Result

# The tasks whose validation split is carved from a train split networks are trained on (CIFAR-10 train; the
# Tiny ImageNet train folders): the rows the leakage question is about.
PREFIXES = ("cifar10", "breeds-tiny", "tiny-imagenet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=Path, default=Path("submissions"))
    args = parser.parse_args(argv)
    rows, changed, choices, beyond, shifts = [], 0, 0, [], []
    for path in sorted(args.submissions.glob("*/results/*.json")):
        if path.name.endswith(".samples.json") or not path.name.startswith(PREFIXES):
            continue
        try:
            fit = crossfit(Result.read(path))
        except SubclassbenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        changed += fit.changed
        choices += 2
        shifts.append(fit.shift)
        ci = fit.committed_ci95
        if fit.beyond_interval:
            beyond.append(f"{path.parent.parent.name}/{path.name}")
        rows.append(
            f"| {path.parent.parent.name} | {path.stem} | {fit.committed} | {fit.chosen_a} / {fit.chosen_b} | "
            f"{fit.committed_ami:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" | "
            f"{fit.committed_on_halves:.3f} | {fit.crossfit_ami:.3f} | {fit.shift:+.3f} | "
            f"{'yes' if fit.beyond_interval else 'no'} |"
        )
    print("| submission | result | committed on val | cross-fitted (A / B) | committed AMI [95%] | committed, on the "
          "halves | cross-fitted | shift | beyond the interval |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    largest = max(shifts, key=abs) if shifts else 0.0
    print(
        f"{len(rows)} results; the cross-fitted choice differs from the committed layer in {changed} of {choices} "
        f"choices; shift from {min(shifts, default=0):+.3f} to {max(shifts, default=0):+.3f} (largest "
        f"{largest:+.3f}); beyond the committed AMI's interval: {len(beyond)}"
        + (f" ({', '.join(beyond)})" if beyond else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
