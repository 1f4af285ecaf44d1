"""Where results go (subclassbench.evaluation.outputs): the write-time check under a lock, so two runs writing
one --out never silently lose a result, and a quick --limit try never replaces a full result."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import subclassbench
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.outputs import ANY, write_result
from subclassbench.results.result import Result

FAST = {"metrics": ["clusterability"], "bootstrap": 0}


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {
        "full": subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", **FAST),
        "limited": subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", limit=40, **FAST),
    }


def test_a_file_written_by_another_run_meanwhile_is_kept_and_this_run_fails(results, tmp_path: Path):
    path = tmp_path / "r.json"
    expected = None  # absent when this run checked its --out, before its work
    write_result(results["full"], path, force=False, expected=ANY)  # another run finished first
    theirs = path.read_bytes()
    with pytest.raises(SubclassbenchError, match="written by another run while this one ran"):
        write_result(results["full"], path, force=False, expected=expected)
    assert path.read_bytes() == theirs
    write_result(results["full"], path, force=True, expected=expected)  # --force replaces it on purpose


def test_two_runs_racing_for_one_path_leave_one_result_and_one_error(results, tmp_path: Path):
    path, outcomes = tmp_path / "r.json", []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            write_result(results["full"], path, force=False, expected=None)
            outcomes.append("wrote")
        except SubclassbenchError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o == "wrote" for o in outcomes) == [False, True], outcomes
    assert Result.read(path).task_name == "digits-5"


def test_a_limited_result_does_not_replace_a_full_one(results, tmp_path: Path):
    path = tmp_path / "r.json"
    write_result(results["full"], path, force=False)
    with pytest.raises(SubclassbenchError, match="a --limit quick try does not replace it"):
        write_result(results["limited"], path, force=False)
    assert not Result.read(path).limited
    write_result(results["limited"], tmp_path / "quick.json", force=False)  # another path is fine
    write_result(results["full"], tmp_path / "quick.json", force=False)  # and a full run replaces a quick one
