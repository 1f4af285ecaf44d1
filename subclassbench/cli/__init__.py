"""Command line: each command parses its options, calls one library function and prints what it returned.

Commands live in the modules of this package by theme (evaluation, tasks and models, submissions,
comparisons); this module holds the Typer app, the options they share and ``main``.

User errors (:class:`SubclassbenchError`) become one ``error:`` line on
stderr and exit code 2; nothing is written when a command fails.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypedDict, TypeVar

import typer

from subclassbench.core.limits import MAX_SEED
from subclassbench.errors import SubclassbenchError

P = ParamSpec("P")
R = TypeVar("R")


class _HelpStyle(TypedDict):  # the Typer keyword arguments every app here shares
    rich_markup_mode: None


# Help is click's plain formatter, not typer's Rich one (rich_markup_mode=None), for two reasons:
# * typer 0.29's Rich formatter prints a type column from TyperOption.display_type_rich(), which has no
#   is_flag check, so every boolean flag reads `--force <bool>` as if it took a value (`--force true`
#   then fails). typer ≤ 0.28 dropped types containing "bool" there; the plain formatter's
#   get_help_record() has always skipped flags.
# * Rich markup mode parses help text as markup: `[@TAG]`, `[default: every sample]` vanish from it.
# tests/cli/test_cli.py holds both in place.
HELP: _HelpStyle = {"rich_markup_mode": None}

app = typer.Typer(
    help="Score every layer of an encoder for subclass clusterability and transfer.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    # click wraps help at 80 columns by default and cuts command summaries to fit; use a wide terminal.
    context_settings={"max_content_width": 120},
    **HELP,
)


def _version(value: bool) -> None:
    if value:
        from subclassbench.core.version import __version__

        typer.echo(f"subclassbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Score every layer of an encoder for subclass clusterability and transfer."""


tasks_app = typer.Typer(help="List tasks, or show one resolved task.", invoke_without_command=True, **HELP)
app.add_typer(tasks_app, name="tasks")
cache_app = typer.Typer(help="Inspect or prune the feature cache.", no_args_is_help=True, **HELP)
app.add_typer(cache_app, name="cache")
leaderboard_app = typer.Typer(help="Build or check the leaderboard from submissions/.", no_args_is_help=True, **HELP)
app.add_typer(leaderboard_app, name="leaderboard")


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SubclassbenchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # the file system refused a path (too long, a file where a folder must be …)
            where = f" {exc.filename}" if exc.filename else ""
            typer.echo(f"error: cannot use{where}: {exc.strerror or exc}; check the path", err=True)
            raise typer.Exit(2) from None

    return wrapper


def split_list(values: list[str] | None) -> list[str] | None:
    """Comma-separated or repeated option values as one list."""
    if not values:
        return None
    return [name.strip() for item in values for name in item.split(",") if name.strip()]


def named_paths(
    items: list[str] | None, option: str, hint: str, names: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Repeated ``NAME=PATH`` option values → {name: path}, each name once (and one of ``names`` if given)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path or (names is not None and name not in names):
            raise SubclassbenchError(f"{option} needs NAME=PATH ({hint}), got '{item}'")
        if name in out:
            raise SubclassbenchError(f"{option} names '{name}' twice; give each once")
        out[name] = path
    return out


def _scalar(text: str) -> Any:
    """A command-line value as the number, true/false/none or string it spells."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def assignments(items: list[str] | None, option: str, example: str) -> dict[str, Any] | None:
    """Repeated ``KEY=VALUE`` option values → {key: value}, numbers and true/false parsed; each key once."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise SubclassbenchError(f"{option} needs KEY=VALUE (e.g. {option} {example}), got '{item}'")
        if key in out:
            raise SubclassbenchError(f"{option} sets '{key}' twice; give each once")
        out[key] = value if "," in value else _scalar(value)
    return out or None


# Options that evaluate, extract and score share (the cache key is built from the same request fields).
ModelOption = Annotated[
    str,
    typer.Option(
        help="Encoder spec: builtin:ARCH[.TAG], timm:NAME[@REV], open_clip:ARCH[@TAG], hf:REPO[@REV], or an "
        "installed plug-in's prefix (`subclassbench encoders` lists them)."
    ),
]
TaskOption = Annotated[str, typer.Option(help="Task name (see `subclassbench tasks`) or task file path.")]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        help="Weights file: .safetensors, a torch checkpoint or a `train` run folder. "
        "[default: the spec's own: a packaged tag, pretrained timm/open_clip weights]"
    ),
]
ModelArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        help="A constructor argument of the model, KEY=VALUE (repeatable), e.g. --model-arg pad_type=same "
        "(timm) or --model-arg norm=gn (builtin). Recorded in the result. [default: the model's own]",
    ),
]
PreprocessOption = Annotated[
    list[str] | None,
    typer.Option(
        "--preprocess",
        help="Replace a field of the encoder's preprocessing, KEY=VALUE (repeatable): mean, std (one value or "
        "one per channel, comma-separated), input_size (SIZE or H,W), interpolation (bilinear, bicubic), "
        "crop_pct. Recorded in the result. [default: the encoder's own]",
    ),
]
DataOption = Annotated[
    str | None,
    typer.Option(
        help="Image data: .npz, a folder of *_<split>.npz, an image-folder tree or a saved HF dataset. "
        "[default: the task's own source; tasks whose data does not ship need it]"
    ),
]
OodDataOption = Annotated[
    list[str] | None,
    typer.Option(help="NAME=PATH: data for the task's OOD set NAME (repeatable; default: --data)."),
]
LayersOption = Annotated[
    list[str] | None,
    typer.Option(help="Layers to score (comma-separated or repeated; see `subclassbench layers`). [default: all]"),
]
SplitOption = Annotated[str | None, typer.Option(help="Split to score (default: the task's evaluation split).")]
CacheDirOption = Annotated[
    str | None,
    typer.Option(help="Feature cache folder (default: $SUBCLASSBENCH_CACHE or ~/.cache/subclassbench/features)."),
]
# run and train-runs: where their Ray tasks go.
RayAddressOption = Annotated[
    str | None, typer.Option("--address", help="Ray cluster to join (default: start a local one).")
]
RayCpusOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="CPUs of the local Ray cluster (default: all).")
]


def finite_number(value: float | None) -> float | None:
    """An option callback: NaN passes click's min/max checks (every comparison with it is false), so refuse it."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


MAX_GPUS_PER_TASK = 64.0


def gpus_option(help: str) -> Any:
    """``--gpus-per-task``: a finite number from 0 to :data:`MAX_GPUS_PER_TASK`."""
    return typer.Option("--gpus-per-task", min=0, max=MAX_GPUS_PER_TASK, callback=finite_number, help=help)


def seed_option(help: str) -> Any:
    """``--seed``: an integer from 0 to 2**63 - 1 (docs/limits.md)."""
    return typer.Option("--seed", min=0, max=MAX_SEED, help=help)


QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress on stderr (stage lines, bars); evaluate, score and compare print only what they wrote.",
    ),
]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Images per forward pass (features do not depend on it).")]
LimitOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Quick try: a seeded subset of at most N samples per split, stratified by subclass. "
        "Recorded as non-canonical; never ranked. [default: every sample]",
    ),
]
DtypeOption = Annotated[
    str, typer.Option(help="Forward-pass precision: fp32 (the protocol's reference) or bf16 (autocast).")
]
ChannelsLastOption = Annotated[
    bool, typer.Option("--channels-last", help="NHWC memory layout for the forward pass (faster GPU convolutions).")
]
ScoreWorkersOption = Annotated[
    int,
    typer.Option(
        min=0,
        max=256,
        help="Processes scoring clusterability's (layer, superclass) units; the same scores (0: one per core).",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=64,
        help="Processes decoding encoded images ahead of the forward pass (0: none). "
        "[default: one per available core but one; none for in-memory arrays]",
    ),
]
DecoderOption = Annotated[
    str,
    typer.Option(
        help="Encoded images: decode with Pillow in the loader processes (pil, the reference) or with "
        "torchvision on --device (torchvision: nvJPEG on a GPU). Recorded; keys the feature cache."
    ),
]
DEFAULT_MODEL = "builtin:digits_cnn.digits5_coarse"


# Importing the command modules registers their commands on the apps above, in this (help) order.
for _module in ("evaluation", "models", "tasks", "submissions", "compare", "results", "reproductions"):
    importlib.import_module(f"subclassbench.cli.{_module}")


def _flag_given_a_value(exc: Exception, argv: list[str]) -> str | None:
    """The usage error of `--force true` (a flag followed by a value), said as such; None for any other.

    click reports the value as an "unexpected extra argument", which does not say that flags take none.
    """
    ctx = getattr(exc, "ctx", None)
    if ctx is None or "unexpected extra argument" not in str(exc):
        return None
    flags = {opt for p in ctx.command.params if getattr(p, "is_flag", False) for opt in (*p.opts, *p.secondary_opts)}
    for before, token in itertools.pairwise(argv):
        if before in flags and token.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return f"{before} is a flag and takes no value: pass {before} alone, or leave it out, not {before} {token}"
    return None


def main(argv: list[str] | None = None) -> None:
    """The ``subclassbench`` entry point: every failure is one ``error:`` line and an exit code.

    Usage errors (an unknown option, a bad value) are 2, like user errors;
    click's framed multi-line boxes are replaced by one line naming ``--help``.
    """
    try:  # typer ≥ 0.20 carries its own copy of click
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions as click_errors  # type: ignore[no-redef]  # the same module, from click

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="subclassbench", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # a bare group: its help, as `--help` shows it
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        code = 0
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "subclassbench"
        message = _flag_given_a_value(exc, sys.argv[1:] if argv is None else argv)
        message = message or " ".join(exc.format_message().split()).rstrip(".")
        print(f"error: {message}; see `{where} --help`", file=sys.stderr)
        code = 2
    except click_errors.ClickException as exc:
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        code = 2
    except SubclassbenchError as exc:  # raised outside a command body (e.g. in a callback)
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted; nothing was written", file=sys.stderr)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
