"""results/integrity.py: a result's numbers must follow from its per-layer data and per-sample file, to the last
digit that can matter; a hand edit far below what a reader would notice is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import read_result


def _edited(path: Path, edit) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(SubclassbenchError) as caught:
        read_result(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_copy_reads_before_any_edit(copy):
    assert read_result(copy).summary["committed_ami"] is not None


def test_a_committed_ami_edited_by_half_a_hundredth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["summary"]["committed_ami"] += 0.005

    assert "committed_ami" in _refusal(_edited(copy, nudge))


def test_an_interval_endpoint_edited_by_a_ten_thousandth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["summary"]["ci95"]["committed_ami"][0] += 1e-4

    assert "ci95" in _refusal(_edited(copy, nudge))


def test_a_layer_ami_edited_by_a_millionth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["layers"][0]["clusterability"]["ami"] += 1e-6

    assert "ami" in _refusal(_edited(copy, nudge))
