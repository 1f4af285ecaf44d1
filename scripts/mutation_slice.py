"""A slice of mutation testing for CI: a few modules of the scoring core, each held to its recorded floor.

Which modules: the scope's modules a change touches (``--changed-since REF``), else one module in rotation
(the day of the year picks it), or those named with ``--module``. Each is mutated by mutmut
(``[tool.mutmut]`` in pyproject.toml) within a time budget, and its score (killed ÷ mutants; a timeout counts
as killed, as mutmut counts it) is compared with its floor in ``[tool.subclassbench.mutation-floors]``. A
score below its floor fails the run: a change made the tests miss bugs they used to catch. A module without a
floor is reported, never failed. The full run stays ``mutmut run`` (docs/testing.md, "Mutation testing").

``--sample N`` scores a random sample of N mutants per module instead of all of them (fixed by ``--salt``: the N
mutants whose sha256 of salt and name is smallest), with a Wilson 95% interval on the module's whole score. A
module of hundreds of mutants is then measured in minutes rather than hours. A module whose floor was measured on
such a sample (``[tool.subclassbench.mutation-samples]``) is always scored on the same sample.

The floor is read as a number of survivors allowed among the mutants asked for: a run fails when more survive than
``(1 - floor) x asked``. For a finished run that is the score falling below the floor; a run whose budget ran out
fails only when the survivors found so far already exceed that number, so a partial run never fails on a slice
that happened to hold the known equivalent mutants.

    python scripts/mutation_slice.py --changed-since origin/main --budget 300
    python scripts/mutation_slice.py --module subclassbench.uncertainty.ranking
    python scripts/mutation_slice.py --module subclassbench.results.integrity --sample 40 --budget 7200
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"^\s*(?P<mutant>(?P<name>[\w.]+)__mutmut_\d+): (?P<status>[\w ]+?)\s*$")
KILLED = {"killed", "timeout"}  # mutmut counts a mutant that hangs the tests as caught
SALT = "subclassbench/mutation-sample/v1"
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def config() -> tuple[list[str], dict[str, float], dict[str, int]]:
    """The scope's modules (dotted names, from ``[tool.mutmut] source_paths``), their floors and the sample sizes
    those floors were measured on (modules scored on all their mutants have none)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    modules: list[str] = []
    for entry in project["tool"]["mutmut"]["source_paths"]:
        path = REPO / entry
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        modules += [module_name(f) for f in files if f.name != "__init__.py"]
    ours = project["tool"].get("subclassbench", {})
    floors = {str(k): float(v) for k, v in ours.get("mutation-floors", {}).items()}
    samples = {str(k): int(v) for k, v in ours.get("mutation-samples", {}).items()}
    return modules, floors, samples


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


def mutant_names(module: str) -> list[str]:
    """Every mutant mutmut makes of one module, named as ``mutmut run`` takes them (mutmut's own generator)."""
    from mutmut.mutation.file_mutation import mutate_file_contents  # the dev extra; only sampling needs it
    from mutmut.utils.format_utils import get_mutant_name

    path = Path(*module.split(".")).with_suffix(".py")
    mutated = mutate_file_contents(str(path), (REPO / path).read_text())
    return sorted(get_mutant_name(path, name) for name in mutated.mutant_names)


def draw(names: list[str], size: int, salt: str = SALT) -> list[str]:
    """A sample of ``size`` names without replacement, fixed by ``salt``: those whose sha256 of salt/name is
    smallest. A mutant added or removed elsewhere changes the sample by at most that one mutant."""
    return sorted(sorted(names, key=lambda n: hashlib.sha256(f"{salt}/{n}".encode()).hexdigest())[:size])


@dataclass
class Score:
    """One module's mutation score: killed (timeouts included) of the mutants checked."""

    killed: int
    checked: int
    finished: bool  # every mutant asked for was checked
    asked: int = 0  # how many mutants the run was asked for (the sample, or every mutant of the module)
    survivors: list[str] = field(default_factory=list)
    timeouts: int = 0  # of the killed: a worker stopped at mutmut's time limit (reported apart, weaker evidence)
    population: int | None = None  # the module's mutant count when ``checked`` is a random sample of it

    @property
    def value(self) -> float:
        return self.killed / self.checked if self.checked else 1.0

    def interval(self) -> tuple[float, float]:
        """Wilson's 95% interval for a sample; the score itself (both ends) for a full run."""
        if self.population is None or self.checked == 0:
            return self.value, self.value
        n, p = self.checked, self.value
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 / (1 + Z95**2 / n) * ((p * (1 - p) / n + Z95**2 / (4 * n * n)) ** 0.5)
        return max(0.0, centre - half), min(1.0, centre + half)

    def below(self, floor: float) -> bool:
        """A drop below the floor: more survivors than the floor allows among the mutants asked for. Sound for a
        run cut short by its budget too: the survivors found so far are a lower bound on the final count."""
        return len(self.survivors) > (1.0 - floor) * max(self.asked, self.checked) + 1e-9


def score(module: str, budget_s: float, names: list[str] | None = None) -> Score:
    """The score of one module (or of the named mutants of it), run within ``budget_s`` seconds."""
    # Its own process group: mutmut forks workers, and a budget that runs out must stop them all.
    run = subprocess.Popen([sys.executable, "-m", "mutmut", "run", *(names or [f"{module}.*"])], cwd=REPO,
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
    wanted = set(names or [])
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        found = STATUS.match(line)
        if not found:
            continue
        if (found["mutant"] in wanted) if names else found["name"].startswith(module + "."):
            statuses[found["mutant"]] = found["status"]
    done = {n: s for n, s in statuses.items() if s != "not checked"}
    survivors = sorted(n for n, s in done.items() if s not in KILLED)
    return Score(sum(s in KILLED for s in done.values()), len(done), finished and len(done) == len(statuses),
                 len(names) if names else len(statuses), survivors,
                 sum(s == "timeout" for s in done.values()))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="a module of the scope (repeatable)")
    parser.add_argument("--changed-since", help="a git ref: the scope's modules changed since it")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole slice")
    parser.add_argument("--sample", type=int, help="score a random sample of this many mutants per module")
    parser.add_argument("--salt", default=SALT, help="fixes which mutants --sample draws")
    args = parser.parse_args(argv)
    scope, floors, samples = config()
    unknown = [m for m in args.module or [] if m not in scope]
    if unknown:
        print(f"error: {unknown[0]} is not in the mutation scope ([tool.mutmut] source_paths)", file=sys.stderr)
        return 2
    if args.sample is not None and args.sample < 1:
        print("error: --sample takes a positive number of mutants", file=sys.stderr)
        return 2
    modules = args.module or (changed_modules(args.changed_since, scope) if args.changed_since else [])
    modules = modules or [in_rotation(scope)]
    failed = False
    started = time.monotonic()
    deadline = started + args.budget
    for i, module in enumerate(modules):
        budget = max(30.0, (deadline - time.monotonic()) / (len(modules) - i))
        population: int | None = None
        names: list[str] | None = None
        size = args.sample if args.sample is not None else samples.get(module)
        if size is not None:
            everyone = mutant_names(module)
            names, population = draw(everyone, size, args.salt), len(everyone)
        result = score(module, budget, names)
        result.population = population
        floor = floors.get(module)
        verdict = "no floor" if floor is None else ("BELOW FLOOR" if result.below(floor) else "ok")
        partial = "" if result.finished else " (budget spent: the mutants checked so far)"
        low, high = result.interval()
        sampled = "" if population is None else f", a sample of {population} mutants, 95% CI [{low:.3f}, {high:.3f}]"
        timeouts = f" ({result.timeouts} by timeout)" if result.timeouts else ""
        print(f"{module}: {result.killed}/{result.checked}{timeouts} = {result.value:.3f}{sampled}, "
              f"floor {floor if floor is not None else '-'}: {verdict}{partial}")  # fmt: skip
        if result.survivors:
            print("  survived: " + " ".join(result.survivors))
        failed |= floor is not None and result.below(floor)
    print(f"mutation slice: {len(modules)} module(s) in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
