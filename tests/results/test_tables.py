"""`subclassbench results` and `subclassbench.load_results`: one table across result files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import subclassbench
from subclassbench.cli import app
from subclassbench.results.result import read_result
from tests.conftest import REPO

runner = CliRunner()
SUBMISSION = REPO / "submissions" / "digits-cnn-id5"


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_load_results_gives_one_row_per_result_with_its_headline_numbers_and_intervals():
    frame = subclassbench.load_results(SUBMISSION)
    files = sorted((SUBMISSION / "results").glob("*.json"))
    assert list(frame["file"]) == [str(f) for f in files]
    for file, (_, row) in zip(files, frame.iterrows(), strict=True):
        summary = read_result(file).summary
        assert row["committed_ami"] == summary["committed_ami"]
        assert row["ood_retained"] == summary["ood_retained"]
        assert [row["committed_ami_low"], row["committed_ami_high"]] == summary["ci95"]["committed_ami"]
        assert row["task"] == "digits-id5" and row["model"] == "builtin:digits_cnn"
    assert frame["weights_sha256"].nunique() == 3  # three training seeds, three weights


def test_results_command_writes_csv_parquet_and_json_of_the_same_table(tmp_path):
    out = cli(
        "results", SUBMISSION, "--csv", tmp_path / "t.csv", "--parquet", tmp_path / "t.parquet",
        "--json", tmp_path / "t.json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "0.967 [" in out.output and "embedding / block2" in out.output and "block1 (medium)" in out.output
    expected = subclassbench.load_results(SUBMISSION)
    for frame in (
        pd.read_csv(tmp_path / "t.csv"),
        pd.read_parquet(tmp_path / "t.parquet"),
        pd.read_json(tmp_path / "t.json", orient="records"),
    ):
        assert list(frame.columns) == list(expected.columns)
        assert frame["committed_ami"].tolist() == pytest.approx(expected["committed_ami"].tolist())


@pytest.mark.parametrize("case", ["missing", "folder-as-csv", "edited"])
def test_bad_input_is_one_error_line_and_writes_nothing(case, tmp_path):
    args: list[object] = ["results"]
    if case == "missing":
        args.append(tmp_path / "nothing-here")
    elif case == "folder-as-csv":
        args += [SUBMISSION, "--csv", tmp_path]
    else:
        copy = tmp_path / "r"
        shutil.copytree(SUBMISSION / "results", copy)
        doc = json.loads((copy / "digits-id5.json").read_text())
        doc["summary"]["committed_ami"] = 0.999
        (copy / "digits-id5.json").write_text(json.dumps(doc))
        args += [copy, "--csv", tmp_path / "t.csv"]
    out = cli(*args)
    assert out.exit_code == 2 and out.output.startswith("error:") and out.output.count("\n") == 1, out.output
    assert not (tmp_path / "t.csv").exists() and not list(Path(tmp_path).glob("*.csv"))
