"""`subclassbench verify` on the command line (subclassbench.cli.submissions): progress on stderr, JSON kept
clean on stdout, nothing shown when quiet or piped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core import progress

runner = CliRunner()


MODEL = "builtin:digits_cnn.digits5_coarse"


def cli(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


ALWAYS = {progress.ENV: "always"}  # CliRunner's stderr is no terminal: the override shows stage lines there


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> Path:
    """A digits-5 submission of the packaged coarse CNN, clusterability only, made with progress shown."""
    subs = tmp_path_factory.mktemp("feedback") / "submissions"
    made = cli(
        "submit", "--name", "cnn", "--model", MODEL, "--task", "digits-5", "--metrics", "clusterability",
        "--submissions", subs, "--labels", "superclass", "--label-task", "digits-5",
        "--training-data", "digits-5 train", "--license", "MIT", "--citation", "This test.",
        env=ALWAYS,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    # submit says which task it is on, and the evaluation inside it says what it does
    assert "submit 1/1: evaluating builtin:digits_cnn.digits5_coarse on digits-5" in made.stderr
    assert "features: builtin:digits_cnn.digits5_coarse on digits-5 split 'test'" in made.stderr
    assert "clusterability of 4 layers" in made.stderr
    assert "submit 1/1" not in made.stdout
    return subs / "cnn"


def test_verify_reports_each_result_and_its_stages_on_stderr(submission):
    result = cli("verify", submission, env=ALWAYS)
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    assert err[0] == "verify 1/1: digits-5: re-running builtin:digits_cnn.digits5_coarse without the feature cache"
    assert any(line.startswith("bootstrap intervals (1000 resamples)") for line in err)
    assert result.stdout == "digits-5: OK (4 layers within tolerance)\n"


def test_verify_json_stays_json_with_progress_shown(submission):
    result = cli("verify", submission, "--json", env=ALWAYS)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [o["status"] for o in doc["outcomes"]] == ["ok"] and "verify 1/1" in result.stderr


def test_quiet_and_pipes_show_no_progress(submission):
    quiet = cli("verify", submission, "--quiet", env=ALWAYS)
    piped = cli("verify", submission)  # no terminal, no override
    assert quiet.exit_code == piped.exit_code == 0
    assert quiet.stderr == piped.stderr == ""
