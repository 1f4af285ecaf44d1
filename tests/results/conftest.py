"""Fixtures and helpers of the result tests (tests/results/test_samples.py, test_intervals.py, test_integrity.py):
one evaluated digits-5 result with its per-sample file, a private copy of it per test, two results of both families
(``shifted``: digits-5 with its shift, refit and head; ``ood``: digits-id5 with an OOD set), a result rewritten as
the first bootstrap method wrote it, and the one-line refusal of a result that does not read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.results import intervals
from subclassbench.results.result import read_result
from subclassbench.scoring.samples import SampleOutputs
from subclassbench.uncertainty import bootstrap
from subclassbench.uncertainty.bootstrap import PREVIOUS_METHODS

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    return _evaluated(tmp_path_factory.mktemp("ci") / "digits.json", "--metrics", "clusterability")


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    """digits-5, both families: a subpopulation shift and refit, the network's own head; no OOD set."""
    return _evaluated(tmp_path_factory.mktemp("shifted") / "digits.json")


@pytest.fixture(scope="module")
def ood(tmp_path_factory) -> Path:
    """digits-id5, both families: one OOD set (digits-ood5)."""
    return _evaluated(tmp_path_factory.mktemp("ood") / "id5.json", "--task", "digits-id5")


def _evaluated(out: Path, *args: str) -> Path:
    result = cli("evaluate", "--out", out, "--quiet", *args)
    assert result.exit_code == 0, result.output
    return out


def loaded(path: Path) -> tuple[dict, SampleOutputs]:
    """A result's document as stored (not migrated) and its per-sample outputs, to edit and check directly."""
    samples = read_result(path).samples
    assert samples is not None
    return json.loads(path.read_text()), samples


@pytest.fixture
def copy(evaluated: Path, tmp_path: Path) -> Path:
    for path in evaluated.parent.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / evaluated.name


def _earlier_method(result_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewrite a result as the first bootstrap method wrote it: AMI replicates left uncentred."""
    with monkeypatch.context() as patched:
        patched.setattr(bootstrap, "nmi_from_tables", bootstrap.ami_from_tables)  # an offset of zero
        patched.setitem(bootstrap.BOOTSTRAP, "method", PREVIOUS_METHODS[0])
        patched.setattr(intervals, "METHOD", "none yet")  # so that refresh() runs
        intervals.refresh(read_result(result_path)).write(result_path)


def _refused(path: Path, fragment: str) -> None:
    with pytest.raises(SubclassbenchError) as caught:
        read_result(path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
