"""Where results go: the default path under ``results/``, safe names, the ``--out`` check, shard numbers."""

from __future__ import annotations

import re
from pathlib import Path

from subclassbench.core.files import check_file_name, check_writable_folder, inside, locked
from subclassbench.core.hashing import sha256_file
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.results.result import Result, check_output_path
from subclassbench.tasks.task import load_task

RESULTS_ROOT = Path("results")
ANY = object()  # write_result: no earlier check to compare with (the default path, chosen after the run)
MAX_SHARDS = 10_000


def default_output_path(result: Result) -> Path:
    """results/<spec>[-w<weights sha>|-random]/<task>[.<split>].json: runs of different weights never collide.

    Every component is reduced to safe characters and the path is checked to
    stay inside ``results/``, whatever the spec, task or split names hold.
    """
    encoder = result["encoder"]
    folder = slug(encoder["spec"].replace(":", "__"))
    if encoder["weights"] is not None and encoder["tag"] is None:
        folder += f"-w{encoder['weights']['sha256'][:8]}"
    elif not encoder["pretrained"]:
        folder += "-random"
    task = result["task"]
    split = "" if task["split"] == "test" else f".{slug(task['split'])}"
    path = RESULTS_ROOT / folder / f"{slug(task['name'])}{split}.json"
    inside(RESULTS_ROOT, path, "the default result path")
    return path


def slug(text: str) -> str:
    """Letters, digits and ``._-``, never starting with a dot."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".") or "_"


def check_result_target(path: Path, request: EvaluationRequest, force: bool) -> str | None:
    """Before any work: ``--out`` must be a writable file path, and an existing file is replaced only when it
    is an earlier result of the same model on the same task (or with ``force``). Returns what the file held
    (its sha256, None when absent), which :func:`write_result` checks again under a lock at write time."""
    check_file_name(path)  # first: the file system refuses even to look at a name that is too long
    check_output_path(path)
    check_writable_folder(path.parent)
    _check_replaceable(path, request.model, load_task(request.task).name, request.limit is not None, force)
    return _content(path)


def write_result(result: Result, path: Path, force: bool, expected: str | object | None = ANY) -> Path:
    """Write ``result`` to ``path`` under a lock on the file, re-checking what is there at that moment.

    Two runs writing one path at once: the second to take the lock finds a file that was not there (or not
    that file) when it checked before its work, and fails with one line; neither result is silently lost.
    A quick ``--limit`` result never replaces a full one unless ``force``."""
    with locked(path):  # a hidden .<name>.lock beside the file: within the output folder
        if not force:
            if expected is not ANY and _content(path) != expected:
                raise SubclassbenchError(
                    f"{path} was written by another run while this one ran, so this result was not written; "
                    "re-run with another --out (or --force to replace it)"
                )
            _check_replaceable(path, result.encoder["spec"], result.task_name, result.limited, force)
        return result.write(path)


def _content(path: Path) -> str | None:
    try:
        return sha256_file(path) if path.is_file() else None
    except OSError:
        return None


def _check_replaceable(path: Path, spec: str, task: str, limited: bool, force: bool) -> None:
    """An existing file at ``path`` may be replaced by a result of ``spec`` on ``task``: it is an earlier result of
    the same model on the same task, and a quick ``--limit`` run does not replace a full one (without ``force``)."""
    if force or not path.exists():
        return
    try:
        earlier = Result.read(path)
    except SubclassbenchError:
        earlier = None
    if earlier is None or earlier.encoder["spec"] != spec or earlier.task_name != task:
        raise SubclassbenchError(
            f"--out {path} exists and is not a result of {spec} on {task}; "
            "pass --force to overwrite it, or choose another path"
        )
    if limited and not earlier.limited:
        raise SubclassbenchError(
            f"{path} holds a full result of {spec} on {task}; a --limit quick try does not replace it: "
            "pass another --out, or --force to replace it"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1-based) → (index, count), 0-based index."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SubclassbenchError(f"--shard needs I/N (e.g. 2/4), got '{text}'") from None
    if not 1 <= index <= count or count > MAX_SHARDS:
        raise SubclassbenchError(f"--shard {text}: I must be between 1 and N, and N at most {MAX_SHARDS}")
    return index - 1, count
