"""Fixtures of the leaderboard tests (tests/leaderboard/test_submissions.py, test_board.py): a submissions/
folder with two valid digits-5 submissions, and a private copy of it per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from tests.conftest import digits_mlp_weights

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """submissions/ with two valid digits-5 submissions: a packaged tag and a weights file."""
    root = tmp_path_factory.mktemp("sub")
    subs = root / "submissions"
    subs.mkdir()
    common = ["--task", "digits-5", "--metrics", "clusterability", "--submissions", subs, "--quiet"]
    meta = ["--training-data", "digits-5 train split", "--license", "MIT", "--citation", "This test suite."]
    first = cli(
        "submit",
        "--name",
        "cnn-coarse",
        "--model",
        "builtin:digits_cnn.digits5_coarse",
        *common,
        *meta,
        "--labels",
        "superclass",
        "--label-task",
        "digits-5",
        "--unseen-evaluation-split",
    )
    assert first.exit_code == 0, first.output
    weights = digits_mlp_weights(root / "mlp.safetensors")
    second = cli(
        "submit",
        "--name",
        "mlp-random",
        "--model",
        "builtin:digits_mlp",
        "--weights",
        weights,
        *common,
        *meta,
        "--labels",
        "none",
    )
    assert second.exit_code == 0, second.output
    return subs


@pytest.fixture
def subs(made: Path, tmp_path: Path) -> Path:
    """A private copy each test may break."""
    copy = tmp_path / "submissions"
    shutil.copytree(made, copy)
    return copy
