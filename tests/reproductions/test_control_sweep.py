"""scripts/control_sweep.py: the sweep table from two sets of reports of the same runs."""

from __future__ import annotations

import json

from tests.conftest import load_script


def _script():
    return load_script("control_sweep")


def _report(folder, claim, verdict, controls):
    folder.mkdir(exist_ok=True)
    doc = {"claim": claim, "scale": "cpu", "verdict": verdict,
           "controls": {k: {"verdict": v, "stands_for": ["arm"]} for k, v in controls.items()}}  # fmt: skip
    (folder / f"{claim}.json").write_text(json.dumps(doc))


def test_a_control_that_passes_an_old_rule_is_marked_and_the_arms_verdicts_are_listed(tmp_path, capsys):
    broken = {"untrained": "partly reproduced", "raw pixels": "not reproduced"}
    _report(tmp_path / "old", "toy", "partly reproduced", broken)
    _report(tmp_path / "new", "toy", "not reproduced", dict.fromkeys(broken, "not reproduced"))
    (tmp_path / "new" / "notes.json").write_text("[]")  # not a report: skipped
    assert _script().main(["--before", str(tmp_path / "old"), "--after", str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert "| toy | cpu | untrained | **partly reproduced** (rule broken) | not reproduced |" in out
    assert "| toy | cpu | raw pixels | not reproduced | not reproduced |" in out
    assert "| toy | cpu | partly reproduced | not reproduced |" in out
