"""Where results go: the default path under ``results/``, safe names, the ``--out`` check, shard numbers."""

from __future__ import annotations

import re
from pathlib import Path

from subclassbench.core.files import check_file_name, check_writable_folder, inside
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.results.result import Result, check_output_path
from subclassbench.tasks.task import load_task

RESULTS_ROOT = Path("results")
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


def check_result_target(path: Path, request: EvaluationRequest, force: bool) -> None:
    """Before any work: ``--out`` must be a writable file path, and an existing file is replaced only when it
    is an earlier result of the same model on the same task (or with ``force``)."""
    check_file_name(path)  # first: the file system refuses even to look at a name that is too long
    check_output_path(path)
    check_writable_folder(path.parent)
    if not path.exists() or force:
        return
    try:
        earlier = Result.read(path)
    except SubclassbenchError:
        earlier = None
    task = load_task(request.task)
    if earlier is None or earlier.encoder["spec"] != request.model or earlier.task_name != task.name:
        raise SubclassbenchError(
            f"--out {path} exists and is not a result of {request.model} on {task.name}; "
            "pass --force to overwrite it, or choose another path"
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
