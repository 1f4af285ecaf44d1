"""The terminal report of a result (subclassbench.results.report): headline first, a table that fits the
terminal with the committed and best layers marked, a legend, every prose line within the width."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import subclassbench
from subclassbench.cli import app
from subclassbench.results.report import COLUMNS, format_report, format_table
from subclassbench.results.result import Result


@pytest.fixture(scope="module")
def result() -> Result:
    return subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", bootstrap=20)


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_every_line_fits_the_width_and_the_headline_comes_first(result, width):
    lines = format_report(result, width=width)
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    committed = result.summary["committed_layer"]
    assert lines[0].startswith(f"committed layer {committed} (cross-fitted on 'test'): AMI ")
    low, high = result.summary["ci95"]["committed_ami"]
    assert f"[{low:.3f}, {high:.3f}]" in " ".join(lines[:3])


def test_wider_terminals_show_more_columns_and_wide_shows_them_all(result):
    headers = {w: format_table(result, width=w).splitlines()[0] for w in (60, 100, 200)}
    counts = [sum(c.header in headers[w] for c in COLUMNS) for w in (60, 100, 200)]
    assert counts[0] >= 2 and counts[0] < counts[1] <= counts[2]  # AMI and recon acc always
    assert "AMI" in headers[60] and "recon acc" in headers[60]
    wide = format_table(result, width=60, wide=True).splitlines()[0]
    assert all(c.header in wide for c in COLUMNS)  # the digits task scores both families
    assert "feat. rank" in wide and " rank " not in wide.replace("feat. rank", "").replace("eff. rank", "")


def test_committed_and_best_layers_are_marked_and_explained(result):
    table = format_table(result, width=100).splitlines()
    committed, best = result.summary["committed_layer"], result.summary["best_layer"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert ">" in rows[committed].split()[1:2] or rows[committed].split()[1].startswith(">")
    assert "*" in rows[best].split()[1]
    others = [name for name in rows if name not in (committed, best)]
    assert all(rows[name].split()[1][0].isdigit() for name in others)  # unmarked: the next cell is a number
    legend = " ".join(format_report(result, width=200))
    assert "> committed layer (cross-fitted on 'test')" in legend and "* best AMI on test (not chosen on)" in legend


def test_a_limited_result_says_so_in_its_headline():
    quick = subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", bootstrap=0, limit=40)
    assert "(limited:" in format_report(quick, width=200)[0]


def test_the_cli_prints_the_report_and_takes_wide(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    args = ["evaluate", "--bootstrap", "0", "--out", str(tmp_path / "r.json")]
    compact = CliRunner().invoke(app, args)
    assert compact.exit_code == 0, compact.output
    report = [line for line in compact.output.splitlines() if not line.startswith(("wrote ", "["))]  # paths, stages
    assert len(report) > 8 and all(len(line) <= 80 for line in report), max(report, key=len)
    wide = CliRunner().invoke(app, [*args, "--force", "--wide"])
    assert wide.exit_code == 0 and "eff. rank" in wide.output and "eff. rank" not in compact.output
