"""Feedback on every command (issue 17, item 5): progress on stderr, help that shows every default and
flags as they are used, usage errors as one ``error:`` line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app, main
from subclassbench.core import progress

runner = CliRunner()
MODEL = "builtin:digits_cnn.digits5_coarse"


def cli(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


ALWAYS = {progress.ENV: "always"}  # CliRunner's stderr is no terminal: the override shows stage lines there


# --------------------------------------------------------------------------- help


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


# --------------------------------------------------------------------------- usage errors


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


# --------------------------------------------------------------------------- the progress helper


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stage_lines_need_a_terminal_or_the_override(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    progress.stage("loading")
    assert piped.getvalue() == ""  # piped: nothing by default
    monkeypatch.setenv(progress.ENV, "always")
    progress.stage("loading")
    assert piped.getvalue() == "loading\n"
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv(progress.ENV, "auto")
    progress.stage("on a terminal")
    progress.stage("quiet", enabled=False)
    monkeypatch.setenv(progress.ENV, "never")
    progress.stage("never")
    assert terminal.getvalue() == "on a terminal\n"


def test_bars_are_drawn_on_a_terminal_only(monkeypatch):
    monkeypatch.setenv(progress.ENV, "always")  # stage lines in logs, never a bar: redraws garble a log
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress.bar(3, "x", "it").disable
    monkeypatch.setattr("sys.stderr", Terminal())
    assert not progress.bar(3, "x", "it").disable
    assert progress.bar(3, "x", "it", enabled=False).disable
    assert list(progress.bar(None, "x", "it", enabled=False, iterable=range(3))) == [0, 1, 2]


# --------------------------------------------------------------------------- progress of the commands


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


def test_run_counts_cells_and_keeps_its_json_clean(tmp_path):
    models, tasks = tmp_path / "models.yaml", tmp_path / "tasks.yaml"
    models.write_text(yaml.safe_dump([{"model": "builtin:identity"}, {"model": "builtin:nope"}]))
    tasks.write_text(yaml.safe_dump([{"task": "synthetic-hier", "metrics": ["clusterability"]}]))
    args = ["run", "--models", models, "--tasks", tasks, "--out", tmp_path / "out", "--cache-dir", tmp_path / "c"]
    result = cli(*args, "--json", env=ALWAYS)
    assert result.exit_code == 1  # one cell failed
    doc = json.loads(result.stdout)
    assert [c["status"] for c in doc["cells"]] == ["done", "failed"]
    err = result.stderr.splitlines()
    assert "run 1/2 builtin:identity × synthetic-hier: extracting shard 1/1" in err
    assert "run 1/2 builtin:identity × synthetic-hier: scoring" in err
    assert any(line.startswith("run 1/2 done: builtin:identity × synthetic-hier: ") for line in err)
    retried = "run 2/2 builtin:nope × synthetic-hier: extracting shard 1/1 (attempt 2: "
    assert any(line.startswith(retried) for line in err)
    assert any(line.startswith("run 2/2 failed: builtin:nope × synthetic-hier: ") for line in err)
    again = cli(*args, env=ALWAYS)  # the finished cell is skipped, and said to be
    assert any(line.startswith("run 1/2 skipped: builtin:identity") for line in again.stderr.splitlines())


def test_train_reports_every_epoch(tmp_path):
    result = cli(
        "train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", 2, "--out", tmp_path / "run", env=ALWAYS
    )
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if line.startswith("train: epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    assert all(" test acc " in line for line in epochs)
