"""The negative-control sweep as a table: each claim × control, the verdict it earned under two sets of rules.

Reads the ``<claim>.json`` reports that ``subclassbench reproduce`` wrote with the earlier rules (``--before``)
and with the current ones (``--after``, the same runs re-reported with ``--stages report``), and prints one
markdown row per claim and control, then one per claim for the arms' own verdict. A control that earns more
than "not reproduced" marks a rule a network that learned nothing passes.

    python scripts/control_sweep.py --before OLD_REPORTS --after docs/reproductions [--scale-label cpu]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PASSING = ("reproduced", "partly reproduced")


def _read(folder: Path, claim: str) -> dict[str, Any] | None:
    path = folder / f"{claim}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(verdict: str | None) -> str:
    if verdict is None:
        return "—"
    return f"**{verdict}** (rule broken)" if verdict in PASSING else verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, action="append", help="reports under the old rules")
    parser.add_argument("--after", type=Path, required=True, action="append", help="the same runs, current rules")
    args = parser.parse_args(argv)
    if len(args.before) != len(args.after):
        parser.error("give one --after folder per --before folder")
    controls, arms = [], []
    for before_dir, after_dir in zip(args.before, args.after, strict=True):
        for path in sorted(after_dir.glob("*.json")):
            after = json.loads(path.read_text())
            if not isinstance(after, dict) or "controls" not in after:
                continue
            before = _read(before_dir, path.stem) or {}
            scale = after.get("scale", "?")
            for kind, control in after["controls"].items():
                old = (before.get("controls") or {}).get(kind, {}).get("verdict")
                controls.append(f"| {path.stem} | {scale} | {kind} | {_cell(old)} | {_cell(control['verdict'])} |")
            arms.append(f"| {path.stem} | {scale} | {before.get('verdict', '—')} | {after['verdict']} |")
    print("| claim | scale | control (stands in for the arms) | verdict under the old rule | under the new rule |")
    print("|---|---|---|---|---|")
    print("\n".join(controls))
    print()
    print("| claim | scale | the arms' verdict, old rule | new rule |")
    print("|---|---|---|---|")
    print("\n".join(arms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
