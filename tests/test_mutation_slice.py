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
    scope, floors, samples = script.config()
    assert "subclassbench.uncertainty.ranking" in scope and "subclassbench.results.integrity" in scope
    assert all(not m.endswith("__init__") for m in scope)
    assert floors and set(floors) <= set(scope) and all(0 < f <= 1 for f in floors.values())
    assert set(samples) <= set(floors) and all(n > 0 for n in samples.values())  # a sample size goes with a floor


def test_rotation_visits_every_module(script):
    scope, _, _ = script.config()
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
    result = script.score("subclassbench.uncertainty.ranking", 10)
    assert (result.killed, result.checked, result.finished) == (2, 3, False)  # one not checked yet
    assert result.survivors == ["subclassbench.uncertainty.ranking.better__mutmut_2"] and result.timeouts == 1
    named = script.score("subclassbench.uncertainty.ranking", 10, ["subclassbench.uncertainty.ranking.better__mutmut_1",
                                                                    "subclassbench.uncertainty.ranking.better__mutmut_3"])
    assert (named.killed, named.checked, named.finished) == (1, 1, False)  # only the named ones count
    monkeypatch.setattr(script, "config", lambda: (["subclassbench.uncertainty.ranking"],
                                                   {"subclassbench.uncertainty.ranking": 0.9}, {}))  # fmt: skip
    assert script.main(["--module", "subclassbench.uncertainty.ranking"]) == 1
    assert "2/3 (1 by timeout) = 0.667, floor 0.9: BELOW FLOOR" in capsys.readouterr().out
    monkeypatch.setattr(script, "config", lambda: (["subclassbench.uncertainty.ranking"],
                                                   {"subclassbench.uncertainty.ranking": 0.6}, {}))  # fmt: skip
    assert script.main(["--module", "subclassbench.uncertainty.ranking"]) == 0
    assert script.main(["--module", "subclassbench.nowhere"]) == 2


def test_a_sample_is_fixed_by_its_salt_and_does_not_move_when_other_mutants_come(script):
    names = [f"m.f__mutmut_{i}" for i in range(1, 201)]
    first = script.draw(names, 20)
    assert len(first) == len(set(first)) == 20 and set(first) <= set(names)
    assert script.draw(list(reversed(names)), 20) == first  # the order of the listing does not matter
    assert script.draw(names, 20, salt="another") != first
    # The drawn are those with the smallest sha256 of salt/name, computed here independently.
    import hashlib

    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{script.SALT}/{n}".encode()).hexdigest())
    assert first == sorted(ranked[:20])
    # A new mutant displaces at most one of the drawn: the others keep their place.
    grown = script.draw([*names, "m.g__mutmut_1"], 20)
    assert len(set(grown) & set(first)) >= 19


def test_a_sampled_score_carries_wilsons_interval(script):
    from scipy.stats import binomtest

    sampled = script.Score(killed=34, checked=40, finished=True, asked=40, population=500)
    low, high = sampled.interval()
    ref = binomtest(34, 40).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-9)
    full = script.Score(killed=34, checked=40, finished=True, asked=40)  # every mutant: no sampling error
    assert full.interval() == (0.85, 0.85)


def test_the_floor_allows_a_number_of_survivors_so_a_partial_run_fails_only_on_a_real_drop(script):
    two = ["m.f__mutmut_1", "m.f__mutmut_2"]
    # 40 asked, floor 0.95: two survivors allowed.
    assert not script.Score(38, 40, True, 40, two).below(0.95)
    assert script.Score(37, 40, True, 40, [*two, "m.f__mutmut_3"]).below(0.95)
    # Cut short after 10 mutants holding both known survivors: 0.8 so far, but no more than allowed.
    assert not script.Score(8, 10, False, 40, two).below(0.95)
    # Three survivors in the first 10 already exceed what 40 may hold.
    assert script.Score(7, 10, False, 40, [*two, "m.f__mutmut_3"]).below(0.95)
    assert not script.Score(40, 40, True, 40).below(1.0) and script.Score(39, 40, True, 40, two[:1]).below(1.0)
    assert not script.Score(0, 0, False, 40).below(1.0)  # nothing checked: nothing survived


def test_main_samples_each_module_and_prints_the_interval_and_the_survivors(script, monkeypatch, capsys):
    module = "subclassbench.uncertainty.ranking"
    everyone = [f"{module}.better__mutmut_{i}" for i in range(1, 31)]
    asked = {}

    def fake_score(mod, budget, names=None):
        asked[mod] = names
        return script.Score(len(names) - 1, len(names), True, len(names), survivors=names[:1])

    monkeypatch.setattr(script, "mutant_names", lambda mod: everyone)
    monkeypatch.setattr(script, "score", fake_score)
    monkeypatch.setattr(script, "config", lambda: ([module], {module: 0.9}, {}))
    assert script.main(["--module", module, "--sample", "10"]) == 0
    assert asked[module] == script.draw(everyone, 10)
    out = capsys.readouterr().out
    assert "9/10 = 0.900, a sample of 30 mutants, 95% CI [0.596, 0.982], floor 0.9: ok" in out
    assert f"survived: {asked[module][0]}" in out
    # A floor measured on a sample: that sample is drawn without --sample, and one more survivor fails it.
    monkeypatch.setattr(script, "config", lambda: ([module], {module: 1.0}, {module: 20}))
    assert script.main(["--module", module]) == 1
    assert asked[module] == script.draw(everyone, 20) and "BELOW FLOOR" in capsys.readouterr().out
    assert script.main(["--module", module, "--sample", "0"]) == 2
    assert "error: --sample takes a positive number" in capsys.readouterr().err


def test_the_mutants_of_a_module_are_the_ones_mutmut_makes(script):
    pytest.importorskip("mutmut")  # the dev extra, installed by scripts/setup.sh
    names = script.mutant_names("subclassbench.uncertainty.ranking")
    assert names and all(n.startswith("subclassbench.uncertainty.ranking.") and "__mutmut_" in n for n in names)
    assert len(names) == len(set(names))
