"""What a protocol change moved: each shipped result's headline under the archived board's protocol and the current.

    python scripts/protocol_shift.py leaderboard/v2/results submissions

Prints a markdown table (committed layer and AMI before and after, the new interval, whether the old value lies
inside it, whether the selection images were seen in training, reconstruction through the probe and through the
network's own head) and a one-line count. Reads the result JSON files only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("error: pass the archived results folder and the submissions folder", file=sys.stderr)
        return 2
    old_root, new_root = Path(argv[0]), Path(argv[1])
    print(
        "| submission | result | committed (old) | AMI (old) | committed (new) | AMI (new) [95%] | shift "
        "| old inside new interval | selection seen in training | reconstruction: probe / own head |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    moved, inside, changed, total = [], 0, 0, 0
    for old_path in sorted(old_root.glob("*/*.json")):
        new_path = new_root / old_path.parent.name / "results" / old_path.name
        if not new_path.is_file():
            continue
        old, new = _load(old_path)["summary"], _load(new_path)["summary"]
        if "committed_ami" not in old or "committed_ami" not in new:
            continue
        total += 1
        low, high = new["ci95"]["committed_ami"]
        within = low <= old["committed_ami"] <= high
        inside += within
        changed += old["committed_layer"] not in new.get("committed_layers", [new["committed_layer"]])
        shift = new["committed_ami"] - old["committed_ami"]
        moved.append(shift)
        seen = new["selection"].get("seen_in_training")
        head = new.get("committed_head_reconstruction_acc")
        print(
            f"| {old_path.parent.name} | {old_path.stem} | {old['committed_layer']} | {old['committed_ami']:.3f} "
            f"| {new['committed_layer']} | {new['committed_ami']:.3f} [{low:.3f}, {high:.3f}] | {shift:+.3f} "
            f"| {'yes' if within else '**no**'} | {'unknown' if seen is None else 'yes' if seen else 'no'} "
            f"| {_fmt(new.get('committed_reconstruction_acc'))} / {_fmt(head)} |"
        )
    print()
    print(
        f"{total} results; the old committed layer is not among the new choices in {changed}; shift "
        f"{min(moved):+.3f} to {max(moved):+.3f}; old value inside the new 95% interval: {inside} of {total}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
