"""scripts/mutation_slice.py, CI's slice of mutation testing: which modules it picks, how it scores them from
mutmut's listing, and that a score below its floor fails (mutmut itself is not run here)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("mutation_slice")


def test_the_scope_and_floors_come_from_pyproject(script):
    scope, floors = script.config()
    assert "subclassbench.uncertainty.ranking" in scope and "subclassbench.results.integrity" in scope
    assert all(not m.endswith("__init__") for m in scope)
    assert floors and set(floors) <= set(scope) and all(0 < f <= 1 for f in floors.values())


def test_rotation_visits_every_module(script):
    scope, _ = script.config()
    assert {script.in_rotation(scope, day) for day in range(len(scope))} == set(scope)


def test_a_listing_is_scored_per_module_and_a_drop_below_the_floor_fails(script, monkeypatch, capsys):
    listing = "\n".join([
        "    subclassbench.uncertainty.ranking.better__mutmut_1: killed",
        "    subclassbench.uncertainty.ranking.better__mutmut_2: survived",
        "    subclassbench.uncertainty.ranking.xǁRowǁkey__mutmut_1: timeout",
        "    subclassbench.uncertainty.ranking.better__mutmut_3: not checked",
        "    subclassbench.uncertainty.rankings_other.f__mutmut_1: survived",  # another module: not counted
    ])  # fmt: skip

    def fake_run(args, **kwargs):
        return subprocess.CompletedProcess(args, 0, stdout=listing if "results" in args else "", stderr="")

    class FakeRun:  # `mutmut run`, finished at once
        def __init__(self, args, **kwargs):
            self.pid = 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(script.subprocess, "run", fake_run)
    monkeypatch.setattr(script.subprocess, "Popen", FakeRun)
    assert script.score("subclassbench.uncertainty.ranking", 10) == (2, 3, False)  # one not checked yet
    monkeypatch.setattr(script, "config", lambda: (["subclassbench.uncertainty.ranking"],
                                                   {"subclassbench.uncertainty.ranking": 0.9}))  # fmt: skip
    assert script.main(["--module", "subclassbench.uncertainty.ranking"]) == 1
    assert "2/3 = 0.667, floor 0.9: BELOW FLOOR" in capsys.readouterr().out
    monkeypatch.setattr(script, "config", lambda: (["subclassbench.uncertainty.ranking"],
                                                   {"subclassbench.uncertainty.ranking": 0.6}))  # fmt: skip
    assert script.main(["--module", "subclassbench.uncertainty.ranking"]) == 0
    assert script.main(["--module", "subclassbench.nowhere"]) == 2
