"""The per-sample sidecar (subclassbench.scoring.samples): it recomputes the result's numbers, is byte
identical across runs, and every missing, edited, renamed or hostile one is refused."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.results.result import read_result
from subclassbench.scoring.commitment import hash_halves
from subclassbench.uncertainty.bootstrap import METHOD
from tests.results.conftest import _refused

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_result_carries_intervals_and_a_per_sample_file_that_recomputes_them(evaluated):
    result = read_result(evaluated)
    summary, samples = result.summary, result.samples
    assert samples is not None and (evaluated.parent / "digits.samples.npz").is_file()
    low, high = summary["ci95"]["committed_ami"]
    assert low <= summary["committed_ami"] <= high and high - low > 0
    assert result["uncertainty"]["resamples"] == 1000 and result["uncertainty"]["method"] == METHOD
    # Headline numbers follow from the per-image assignments alone, without features: protocol v3 chooses a
    # layer on one hash half of the test split and scores it on the other (recomputed here with scikit-learn).
    half_a = hash_halves(samples.superclass, samples.subclass)

    def ami(layer: int, rows: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    adjusted_mutual_info_score(
                        samples.subclass[rows & (samples.superclass == s)],
                        samples.kmeans[layer][rows & (samples.superclass == s)],
                    )
                    for s in np.unique(samples.superclass)
                ]
            )
        )

    on_a = [ami(i, half_a) for i in range(len(result.layer_names))]
    on_b = [ami(i, ~half_a) for i in range(len(result.layer_names))]
    a, b = int(np.argmax(on_a)), int(np.argmax(on_b))
    assert summary["committed_layers"] == [result.layer_names[a], result.layer_names[b]]
    assert (on_b[a] + on_a[b]) / 2 == pytest.approx(summary["committed_ami"], abs=1e-12)
    correct = samples.reconstruction_correct()
    assert correct is not None
    crossed = (correct[a][~half_a].mean() + correct[b][half_a].mean()) / 2
    assert crossed == pytest.approx(summary["committed_reconstruction_acc"])
    assert (
        summary["ci95"]["committed_reconstruction_acc"][0]
        <= crossed
        <= summary["ci95"]["committed_reconstruction_acc"][1]
    )


def test_the_per_sample_file_is_byte_identical_across_runs(evaluated, tmp_path):
    again = tmp_path / "digits.json"
    assert cli("evaluate", "--out", again, "--quiet", "--metrics", "clusterability").exit_code == 0
    first = (evaluated.parent / "digits.samples.npz").read_bytes()
    assert (tmp_path / "digits.samples.npz").read_bytes() == first


def test_a_missing_per_sample_file_is_refused(copy):
    (copy.parent / "digits.samples.npz").unlink()
    _refused(copy, "cannot read the per-sample file")


def test_an_edited_per_sample_file_is_refused(copy):
    sidecar = copy.parent / "digits.samples.npz"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    _refused(copy, "sha256 differs")


def test_a_renamed_result_without_its_per_sample_file_is_refused(copy):
    moved = copy.parent / "other.json"
    copy.rename(moved)
    _refused(moved, "not 'other.samples.npz' beside it")


def test_a_per_sample_path_out_of_the_folder_is_refused(copy):
    doc = json.loads(copy.read_text())
    doc["samples"]["file"] = "../../etc/digits.samples.npz"
    copy.write_text(json.dumps(doc))
    _refused(copy, "does not match result schema")


def test_intervals_without_a_per_sample_record_are_refused(copy):
    doc = json.loads(copy.read_text())
    del doc["samples"]
    copy.write_text(json.dumps(doc))
    _refused(copy, "no per-sample file")


def _rewrite_sidecar(copy: Path, members: dict[str, bytes]) -> None:
    """Replace the per-sample file and forge the JSON's sha256 to match, as a hostile editor could."""
    import hashlib

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    (copy.parent / "digits.samples.npz").write_bytes(buffer.getvalue())
    doc = json.loads(copy.read_text())
    doc["samples"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    copy.write_text(json.dumps(doc))


def test_a_pickle_in_the_per_sample_file_is_never_loaded(copy, tmp_path):
    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    np.save(payload, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # an object array: pickle inside
    _rewrite_sidecar(copy, {"superclass.npy": payload.getvalue()})
    _refused(copy, "not a readable per-sample file")
    assert not marker.exists()


def test_a_per_sample_file_with_wrong_shapes_or_members_is_refused(copy):
    with np.load(copy.parent / "digits.samples.npz") as data:
        members = {f"{k}.npy": _npy(data[k]) for k in data.files}
    members["kmeans.npy"] = _npy(np.zeros((2, 3), np.int8))
    _rewrite_sidecar(copy, members)
    _refused(copy, "array 'kmeans' has shape")
    members.pop("kmeans.npy")
    members["../evil.npy"] = _npy(np.zeros(1))
    _rewrite_sidecar(copy, members)
    _refused(copy, "unexpected member")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_per_sample_member_given_twice_is_refused(copy):
    """A zip may hold one name twice; which copy a reader sees depends on the reader."""
    import hashlib
    import warnings

    with np.load(copy.parent / "digits.samples.npz") as data:
        members = [(f"{k}.npy", _npy(data[k])) for k in data.files]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        for name, blob in [*members, ("superclass.npy", _npy(np.zeros(len(np.load(io.BytesIO(members[0][1]))))))]:
            archive.writestr(name, blob)
    (copy.parent / "digits.samples.npz").write_bytes(buffer.getvalue())
    doc = json.loads(copy.read_text())
    doc["samples"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    copy.write_text(json.dumps(doc))
    _refused(copy, "appears twice")


def test_a_per_sample_fifo_is_refused_without_blocking(copy):
    import os

    sidecar = copy.parent / "digits.samples.npz"
    sidecar.unlink()
    os.mkfifo(sidecar)  # reading it would wait forever for a writer
    _refused(copy, "not a regular file")
