"""Bootstrap intervals from the per-sample outputs (subclassbench.results.intervals): an earlier method's
result brought to what evaluate writes, what cannot be recomputed refused, methods never paired, no
intervals without the bootstrap, an edited interval refused."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.leaderboard.board import _pairing
from subclassbench.results import intervals
from subclassbench.results.result import read_result
from subclassbench.uncertainty.bootstrap import PREVIOUS_METHODS
from tests.results.conftest import _earlier_method, _refused

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_an_earlier_methods_result_reads_and_intervals_brings_it_to_what_evaluate_writes(copy, monkeypatch):
    fresh = {p.name: p.read_bytes() for p in copy.parent.iterdir()}
    fresh_ci = read_result(copy).summary["ci95"]
    _earlier_method(copy, monkeypatch)
    old = read_result(copy)  # still a valid result: its intervals follow from its replicates
    assert old["uncertainty"]["method"] == PREVIOUS_METHODS[0] and not intervals.current(old)
    assert old.summary["ci95"]["committed_ami"] != fresh_ci["committed_ami"]
    assert old.summary["ci95"]["committed_within_superclass_acc"] == fresh_ci["committed_within_superclass_acc"]
    checked = cli("intervals", "--check", copy.parent)
    assert checked.exit_code == 1 and f"{copy}: outdated" in checked.output
    assert cli("intervals", copy).exit_code == 0
    assert {p.name: p.read_bytes() for p in copy.parent.iterdir()} == fresh  # byte for byte what evaluate wrote
    again = cli("intervals", copy)
    assert again.exit_code == 0 and f"{copy}: current" in again.output


def test_intervals_command_refuses_what_it_cannot_recompute(copy, tmp_path):
    no_bootstrap = tmp_path / "none" / "r.json"
    assert (
        cli("evaluate", "--out", no_bootstrap, "--quiet", "--metrics", "clusterability", "--bootstrap", "0").exit_code
        == 0
    )
    for args, fragment in (
        ((tmp_path / "missing.json",), "does not exist"),
        ((no_bootstrap,), "current"),  # nothing to recompute, nothing written
    ):
        out = cli("intervals", *args)
        assert fragment in out.output, out.output
    (copy.parent / "digits.samples.npz").unlink()
    out = cli("intervals", copy)
    assert out.exit_code == 2 and out.output.startswith("error:") and out.output.count("\n") == 1


def test_results_of_different_methods_are_never_paired(copy, monkeypatch, tmp_path):
    current = read_result(copy)
    files = list(copy.parent.iterdir())
    other = tmp_path / "old" / copy.name
    other.parent.mkdir()
    for path in files:
        shutil.copy(path, other.parent / path.name)
    _earlier_method(other, monkeypatch)
    assert _pairing(current) is not None and _pairing(current) != _pairing(read_result(other))


def test_no_intervals_with_bootstrap_zero(tmp_path):
    out = tmp_path / "r.json"
    assert cli("evaluate", "--out", out, "--quiet", "--metrics", "clusterability", "--bootstrap", "0").exit_code == 0
    result = read_result(out)
    assert "ci95" not in result.summary and "uncertainty" not in result.doc and result.samples is not None


def test_an_edited_interval_is_refused(copy):
    doc = json.loads(copy.read_text())
    doc["summary"]["ci95"]["committed_ami"] = [0.0, 1.0]
    copy.write_text(json.dumps(doc))
    _refused(copy, "summary.ci95.committed_ami")
