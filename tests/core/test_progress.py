"""Progress on stderr (subclassbench.core.progress): stage lines need a terminal or the override, bars a
terminal."""

from __future__ import annotations

import io

from subclassbench.core import progress


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


def test_progress_asked_for_from_python_shows_without_a_terminal(monkeypatch, capsys):
    """evaluate(progress=True) in Jupyter or a log: stderr is no terminal, but the caller asked for it."""
    import subclassbench

    monkeypatch.delenv(progress.ENV, raising=False)
    subclassbench.evaluate(metrics=["clusterability"], bootstrap=0, cache="off", progress=True)
    shown = capsys.readouterr().err
    assert "loading the data of digits-5" in shown and "extract builtin:digits_cnn" in shown
    subclassbench.evaluate(metrics=["clusterability"], bootstrap=0, cache="off")  # the default: quiet
    assert capsys.readouterr().err == ""
    with progress.requested():
        assert not progress.bar(3, "x", "it").disable
    assert progress.bar(3, "x", "it").disable  # only for the call that asked
