"""Progress of long operations, on stderr: the one place that decides how it looks and when it shows.

Library functions take ``progress: bool`` (the CLI passes ``not --quiet``) and report through
two helpers:

* :func:`stage` — one line naming what starts now (``verify 2/3: cifar10: re-running …``);
* :func:`bar` — a tqdm bar over a loop (images, layers, probes, training steps).

Both write to stderr only (``sys.stderr`` as it is at call time, so test runners that swap it
capture them): stdout carries what a command returns — tables, ``--json`` documents — and stays
parseable whatever progress is shown.

When: on a terminal. Piped or logged output gets none by default, so scripts that read
``2>&1`` see only results and ``error:`` lines. ``SUBCLASSBENCH_PROGRESS`` overrides this:

* ``always`` — stage lines also when stderr is not a terminal (CI logs of a long ``verify``);
  bars still need a terminal, as their in-place redraws garble a log file;
* ``never`` — nothing, as ``--quiet`` does for progress;
* ``auto`` (or unset, or anything else) — the terminal test.

``evaluate(progress=True)`` from Python shows progress whatever stderr is (:func:`requested`): it was asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

ENV = "SUBCLASSBENCH_PROGRESS"


def _mode() -> str:
    value = os.environ.get(ENV, "auto").strip().lower()
    return value if value in ("always", "never") else "auto"


_REQUESTED = 0  # > 0 inside requested(): a Python caller asked for progress explicitly


def _terminal() -> bool:
    if _REQUESTED:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def requested() -> Iterator[None]:
    """Show progress even when stderr is not a terminal, for a caller that asked for it (``evaluate(progress=True)``
    from Python: Jupyter, where tqdm.auto draws a widget, or a log the caller wants filled). The CLI does not use
    it: its progress follows the terminal test, so a piped command's output stays clean."""
    global _REQUESTED
    _REQUESTED += 1
    try:
        yield
    finally:
        _REQUESTED -= 1


def stage(message: str, enabled: bool = True) -> None:
    """One progress line on stderr, printed above any running bar (tqdm redraws the bar below it)."""
    mode = _mode()
    if enabled and mode != "never" and (mode == "always" or _terminal()):
        tqdm.write(message, file=sys.stderr)


def warn(message: str) -> None:
    """A ``warning:`` line on stderr, whatever the progress mode: it is about the numbers, not the progress."""
    print(f"warning: {message}", file=sys.stderr)


def bar(total: int | None, desc: str, unit: str, enabled: bool = True, **options: Any) -> tqdm[Any]:
    """A tqdm bar on stderr, drawn only on a terminal; ``options`` go to tqdm (``iterable``, ``initial``, …).

    A disabled bar still iterates and counts, so callers update it without checking ``enabled``.
    """
    show = enabled and _mode() != "never" and _terminal()
    options.setdefault("leave", False)
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, file=sys.stderr, **options)


def counted(name: str, index: int, total: int) -> str:
    """``name i/n``: the head of a stage line inside a loop over ``total`` items (``index`` from 0)."""
    return f"{name} {index + 1}/{total}"
