"""`subclassbench reproduce` on the command line (subclassbench.cli.reproductions): its help names every
claim, and bad input is one error line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.reproductions import claims as claims_module

runner = CliRunner()


def test_the_cli_help_names_every_claim():
    text = " ".join(runner.invoke(app, ["reproduce", "--help"], env={"COLUMNS": "200"}).output.split())
    for name in claims_module.CLAIMS:
        assert name in text


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["reproduce", "nope"], "unknown claim"),
        (["reproduce", "yang2023", "--scale", "paper"], "--data cifar10=PATH"),
        (["reproduce", "yang2023", "--data", "../etc=/x"], "NAME=PATH"),
        (["reproduce", "yang2023", "--data", "cifar10"], "NAME=PATH"),
        (["reproduce", "yang2023", "--data", "imagenet=/x"], "NAME one of cifar10, tiny-imagenet"),
        (["reproduce", "yang2023", "--data", "cifar10=/a", "--data", "cifar10=/b"], "names 'cifar10' twice"),
        (["reproduce", "yang2023", "--scale", "smoke", "--stages", "train,deploy"], "unknown stage 'deploy'"),
        (["reproduce", "yang2023", "--scale", "smoke", "--device", "tpu"], "device"),
        (["reproduce", "nope", "--dry-run"], "unknown claim 'nope'"),
        (["reproduce", "nguyen2023-shuffled", "--scale", "smoke", "--dry-run"], "has no 'smoke' scale"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path, args, match):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "docs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output
    assert not (tmp_path / "docs").exists()
