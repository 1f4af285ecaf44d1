"""`subclassbench results` (cli/results.py): `--csv -` and `--json -` mean standard output, as in Unix tools."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from subclassbench.cli import app

runner = CliRunner()


def test_a_dash_writes_the_table_to_standard_output_and_no_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["evaluate", "-q", "--metrics", "clusterability", "--bootstrap", "0", "--out", "r.json"])
    assert made.exit_code == 0, made.output
    out = runner.invoke(app, ["results", "r.json", "--csv", "-"])
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))  # nothing but the CSV on standard output
    assert list(frame["file"]) == ["r.json"] and not (tmp_path / "-").exists()
    as_json = runner.invoke(app, ["results", "r.json", "--json", "-", "--csv", "t.csv"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)[0]["file"] == "r.json"
    assert (tmp_path / "t.csv").is_file() and not (tmp_path / "-").exists()
    both = runner.invoke(app, ["results", "r.json", "--json", "-", "--csv", "-"])
    assert both.exit_code == 2 and "only one of --csv - and --json -" in both.output
