"""`subclassbench layers`, `encoders` and `train` on the command line (subclassbench.cli.models): listings,
and train's progress per epoch."""

from __future__ import annotations

from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core import progress

# --------------------------------------------------------------------------- models


runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_layers_and_encoders_commands():
    layers = run("layers", "builtin:cifar_resnet20")
    assert layers.exit_code == 0
    assert layers.output.split() == ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)] + ["embedding"]
    listing = run("encoders")
    assert "builtin:digits_cnn" in listing.output and "digits5_coarse" in listing.output


# --------------------------------------------------------------------------- progress of train


def cli(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


ALWAYS = {progress.ENV: "always"}  # CliRunner's stderr is no terminal: the override shows stage lines there


def test_train_reports_every_epoch(tmp_path):
    result = cli(
        "train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", 2, "--out", tmp_path / "run", env=ALWAYS
    )
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if line.startswith("train: epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    assert all(" test acc " in line for line in epochs)
