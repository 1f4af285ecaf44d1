"""User-facing errors.

Anything the user can fix (unknown model, missing data, bad hash …) raises
:class:`SubclassbenchError` with a one-line message that names the fix. The CLI
prints it without a traceback and exits non-zero; everything else is a bug.
"""

from __future__ import annotations


class SubclassbenchError(Exception):
    """An error caused by user input, with a one-line message naming the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class DataMissingError(SubclassbenchError):
    """A split's data is not there at all (as opposed to being there and wrong).

    Optional parts of an evaluation (the validation split, transfer) are
    skipped with a note when their data is missing; corrupt data is an error.
    """


def closest(name: str, options: list[str], limit: int = 12) -> str:
    """Format the valid choices for an error message, nearest matches first."""
    import difflib

    near = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    rest = [o for o in options if o not in near]
    shown = near + rest[: max(0, limit - len(near))]
    more = f" … (+{len(options) - len(shown)} more)" if len(options) > len(shown) else ""
    return ", ".join(shown) + more


def nearest(name: str, options: list[str], n: int = 5) -> str:
    """The ``n`` options closest to ``name`` (for a catalogue too long to list, like timm's), or a pointer to
    the whole list when none is close."""
    import difflib

    near = difflib.get_close_matches(name, options, n=n, cutoff=0.4)
    if not near:  # a prefix typed right (resnet → resnet18 …) is close too
        near = sorted(o for o in options if o.startswith(name[:4]))[:n]
    shown = ", ".join(near) if near else "none"
    return f"{shown} (of {len(options):,})"


def first_line(exc: BaseException | str, limit: int = 120) -> str:
    """The first line of a third-party exception (or of any text), for embedding in our message; a
    ``SystemExit`` (code that called ``sys.exit``) says so, since its text is only the exit code."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:limit].rstrip(" .")


def describe_failure(exc: BaseException) -> str:
    """One line for a unit of work that failed (a matrix cell, a training run): our own message whole, a
    Ray task error by the exception it wraps, anything else by its first line."""
    if isinstance(exc, SubclassbenchError):
        return str(exc)
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError wraps the original
    if isinstance(cause, BaseException):
        return describe_failure(cause)
    return first_line(exc)
