"""A slice of mutation testing for CI: a few modules of the scoring core, each held to its recorded floor.

Which modules: the scope's modules a change touches (``--changed-since REF``), else one module in rotation
(the day of the year picks it), or those named with ``--module``. Each is mutated by mutmut
(``[tool.mutmut]`` in pyproject.toml) within a time budget, and its score (killed ÷ mutants; a timeout counts
as killed, as mutmut counts it) is compared with its floor in ``[tool.subclassbench.mutation-floors]``. A
score below its floor fails the run: a change made the tests miss bugs they used to catch. A module without a
floor is reported, never failed. The full run stays ``mutmut run`` (docs/testing.md, "Mutation testing").

    python scripts/mutation_slice.py --changed-since origin/main --budget 300
    python scripts/mutation_slice.py --module subclassbench.uncertainty.ranking
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"^\s*(?P<name>[\w.]+)__mutmut_\d+: (?P<status>[\w ]+?)\s*$")
KILLED = {"killed", "timeout"}  # mutmut counts a mutant that hangs the tests as caught


def config() -> tuple[list[str], dict[str, float]]:
    """The scope's modules (dotted names, from ``[tool.mutmut] source_paths``) and their floors."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    modules: list[str] = []
    for entry in project["tool"]["mutmut"]["source_paths"]:
        path = REPO / entry
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        modules += [module_name(f) for f in files if f.name != "__init__.py"]
    floors = project["tool"].get("subclassbench", {}).get("mutation-floors", {})
    return modules, {str(k): float(v) for k, v in floors.items()}


def module_name(path: Path) -> str:
    return ".".join(path.resolve().relative_to(REPO).with_suffix("").parts)


def changed_modules(ref: str, scope: list[str]) -> list[str]:
    out = subprocess.run(["git", "diff", "--name-only", ref, "--", "subclassbench"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    touched = {module_name(REPO / line) for line in out.splitlines() if line.endswith(".py")}
    return [m for m in scope if m in touched]


def in_rotation(scope: list[str], day: int | None = None) -> str:
    day = datetime.date.today().timetuple().tm_yday if day is None else day
    return scope[day % len(scope)]


def score(module: str, budget_s: float) -> tuple[int, int, bool]:
    """(killed, mutants, finished) of one module, run within ``budget_s`` seconds."""
    # Its own process group: mutmut forks workers, and a budget that runs out must stop them all.
    run = subprocess.Popen([sys.executable, "-m", "mutmut", "run", f"{module}.*"], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        run.wait(timeout=budget_s)
        finished = True
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        finished = False
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=REPO,
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
    statuses = []
    for line in listing.splitlines():
        found = STATUS.match(line)
        if found and found["name"].startswith(module + "."):
            statuses.append(found["status"])
    done = [s for s in statuses if s != "not checked"]
    return sum(s in KILLED for s in done), len(done), finished and len(done) == len(statuses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="a module of the scope (repeatable)")
    parser.add_argument("--changed-since", help="a git ref: the scope's modules changed since it")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole slice")
    args = parser.parse_args(argv)
    scope, floors = config()
    unknown = [m for m in args.module or [] if m not in scope]
    if unknown:
        print(f"error: {unknown[0]} is not in the mutation scope ([tool.mutmut] source_paths)", file=sys.stderr)
        return 2
    modules = args.module or (changed_modules(args.changed_since, scope) if args.changed_since else [])
    modules = modules or [in_rotation(scope)]
    failed = False
    deadline = time.monotonic() + args.budget
    for i, module in enumerate(modules):
        budget = max(30.0, (deadline - time.monotonic()) / (len(modules) - i))
        killed, total, finished = score(module, budget)
        floor = floors.get(module)
        value = killed / total if total else 1.0
        verdict = "no floor" if floor is None else ("ok" if value >= floor else "BELOW FLOOR")
        partial = "" if finished else " (budget spent: the mutants checked so far)"
        print(f"{module}: {killed}/{total} = {value:.3f}, floor {floor if floor is not None else '-'}: {verdict}"
              f"{partial}")  # fmt: skip
        failed |= floor is not None and value < floor and total > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
