"""The command line as a whole (subclassbench.cli: the Typer app, its shared options and main): every option
and argument has help and shows its default, flags shown as they are used, usage errors as one ``error:``
line, --version, and the console script's exit code and stderr."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
import yaml
from typer.testing import CliRunner

import subclassbench
from subclassbench.cli import app, main
from tests.conftest import REPO

# --------------------------------------------------------------------------- help and usage errors


runner = CliRunner()


MODEL = "builtin:digits_cnn.digits5_coarse"


def commands() -> Iterator[tuple[str, typer.core.TyperCommand]]:
    """Every command and sub-command, by its full path."""

    def walk(command, path: str):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "subclassbench")


def help_of(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_option_has_help_and_says_its_default():
    missing = []
    for path, command in commands():
        ctx = command.context_class(command, info_name=path)
        for param in command.params:
            if param.hidden or param.param_type_name != "option" or param.name == "help":
                continue
            record = param.get_help_record(ctx)
            shown = record[1] if record else ""
            name = f"{path} {param.opts[0]}"
            if not (param.help or "").strip():
                missing.append(f"{name}: no help")
            if param.is_flag or param.required:
                continue  # a flag is off unless given (or names both sides: --resume/--no-resume)
            if param.default is not None and "[default:" not in shown:
                missing.append(f"{name}: default {param.default!r} not shown")
            if param.default is None and "default" not in shown.lower():
                missing.append(f"{name}: what leaving it out does is not said")
    assert not missing, "\n".join(missing)


def test_every_argument_has_help():
    bare = [
        f"{path} {p.name}"
        for path, command in commands()
        for p in command.params
        if p.param_type_name == "argument" and not (getattr(p, "help", None) or "").strip()
    ]
    assert not bare


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        ((), ["--version"]),
        (("evaluate",), ["--force", "--random-init", "--no-cache", "--channels-last"]),
        (("verify",), ["--shipped-data-only", "--json"]),
        (("leaderboard", "build"), ["--check"]),
        (("train",), ["--resume / --no-resume"]),
    ],
)
def test_flags_are_shown_as_they_are_used(args, flags):
    text = help_of(*args)
    assert "<bool>" not in text and "BOOLEAN" not in text
    for flag in flags:
        line = next(line for line in text.splitlines() if line.strip().startswith(flag))
        after = line.strip()[len(flag) :]
        assert after.startswith("  "), f"{flag} is shown with a value: {line!r}"  # help text, not a metavar


def test_help_text_with_brackets_survives():
    """Rich markup mode ate `[@TAG]` and `[default: …]` from help texts."""
    text = " ".join(help_of("evaluate").split())  # unwrapped
    assert "open_clip:ARCH[@TAG]" in text
    assert "[default: every sample]" in text and "[default: builtin:digits_cnn.digits5_coarse]" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["evaluate", "--bogus"], "No such option: --bogus"),
        (["verify"], "Missing argument 'path'"),
        (["train", "--task", "digits-5"], "Missing option '--arch'"),
        (["evaluate", "--batch-size", "many"], "Invalid value for '--batch-size'"),
        (["evaluate", "--bootstrap", "-1"], "Invalid value for '--bootstrap'"),
        (["compare", "--model", MODEL, "--concepts", "kmeans"], "--concepts must be gmm or nlmcd"),
        (["run", "--models", "m.yaml", "--tasks", "t.yaml", "--executor", "spark"], "unknown executor"),
        (["evaluate", "--force", "true"], "--force is a flag and takes no value"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_are_one_error_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("m.yaml", "t.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump([{"model": MODEL}] if name == "m.yaml" else ["digits-5"]))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err


# --------------------------------------------------------------------------- --version


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    out = cli("--version")
    assert out.exit_code == 0 and out.output.strip() == f"subclassbench {subclassbench.__version__}"


# --------------------------------------------------------------------------- the console script


def test_console_script_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "subclassbench", "evaluate", "--task", "nope", "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown task 'nope'")
    assert "Traceback" not in proc.stderr


def test_the_model_help_names_every_builtin_source():
    from subclassbench.encoders.base import ENCODER_SOURCES

    text = " ".join(runner.invoke(app, ["evaluate", "--help"]).output.split())
    shown = [name for name in ENCODER_SOURCES.names() if name != "module" and f"{name}:" in text]
    assert sorted(shown) == sorted(n for n in ENCODER_SOURCES.names() if n != "module") and "plug-in" in text
