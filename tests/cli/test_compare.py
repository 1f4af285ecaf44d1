"""`subclassbench compare` on the command line (subclassbench.cli.compare): its stages on stderr."""

from __future__ import annotations

from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core import progress

runner = CliRunner()


MODEL = "builtin:digits_cnn.digits5_coarse"


def cli(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


ALWAYS = {progress.ENV: "always"}  # CliRunner's stderr is no terminal: the override shows stage lines there


def test_compare_reports_its_stages(tmp_path):
    result = cli(
        "compare", "--model", MODEL, "--model", "builtin:digits_mlp", "--max-samples", 200, "--out", tmp_path,
        env=ALWAYS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    err = result.stderr
    for line in (
        f"compare: concept memberships of {MODEL} (k=",
        "compare: concept memberships of builtin:digits_mlp",
        "compare: CKA and GRI of 4 × ",
        "compare: gmm concepts of ",
    ):
        assert line in err
    assert "compare:" not in result.stdout and "wrote" in result.stdout
