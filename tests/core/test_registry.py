"""Plug-ins through the registry's entry points (subclassbench.core.registry): a package installed beside
subclassbench adds a ``name:`` encoder-source prefix (examples/subclassbench-plugin-example), and a broken one
fails only where it is used."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.encoders.base import ENCODER_SOURCES, load_encoder
from subclassbench.errors import SubclassbenchError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "subclassbench-plugin-example"
runner = CliRunner()


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package really installed (pip builds it from its pyproject) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))  # builds leave no trace
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True,
    )  # fmt: skip
    return target


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch):
    """Put site folders on sys.path for one test; the registry looks for plug-ins again before and after."""

    def add(*folders: Path) -> None:
        for folder in folders:
            monkeypatch.syspath_prepend(str(folder))
        ENCODER_SOURCES.refresh_plugins()

    yield add
    monkeypatch.undo()
    for name in [n for n in sys.modules if n.startswith(("subclassbench_plugin_example", "broken_plugin"))]:
        del sys.modules[name]
    ENCODER_SOURCES.refresh_plugins()


def _fake_dist(site: Path, dist: str, entry: str, module: str | None = None, code: str = "") -> None:
    """A minimal installed distribution: its metadata, one entry point and (optionally) its module."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[subclassbench.encoder_sources]\n{entry}\n")
    if module:
        (site / f"{module}.py").write_text(code)


def test_example_plugin_evaluates_like_a_builtin(installed_example: Path, on_path, tmp_path: Path):
    on_path(installed_example)
    assert "tinynets" in ENCODER_SOURCES.names()
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", "tinynets:w8", "--metrics", "clusterability", "--bootstrap", "0"]
    result = runner.invoke(app, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["encoder"]["source"] == "tinynets"
    assert doc["encoder"]["plugin"] == "subclassbench-plugin-example==0.1.0"  # results say which code ran
    assert [layer["name"] for layer in doc["layers"]] == ["block1", "block2", "block3", "embedding"]
    listed = runner.invoke(app, ["layers", "tinynets:w8"])
    assert listed.exit_code == 0 and "block2" in listed.output
    assert "tinynets:" in runner.invoke(app, ["encoders"]).output
    # The plug-in's own errors reach the user as one line.
    bad = runner.invoke(app, ["evaluate", "--model", "tinynets:huge"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines()[-1].startswith("error: tinynets:huge: name the width")


def test_the_plugin_release_keys_the_feature_cache(installed_example: Path, on_path):
    on_path(installed_example)
    encoder = load_encoder("tinynets:w8", sample_shape=(1, 8, 8), num_classes=5)
    assert encoder.identity["plugin"] == "subclassbench-plugin-example==0.1.0"
    builtin = load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5)
    assert "plugin" not in builtin.identity  # built-in encoders' cache keys are unchanged


def test_a_broken_plugin_fails_only_where_it_is_used(tmp_path: Path, on_path):
    _fake_dist(tmp_path, "broken-plugin", "broken = broken_plugin:SOURCE", "broken_plugin", "import no_such_module\n")
    on_path(tmp_path)
    result = runner.invoke(app, ["evaluate", "--model", "broken:x"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: plug-in model source 'broken' (from broken-plugin==1.0)")
    assert "Traceback" not in result.output and "uninstall broken-plugin" in lines[0]
    ok = load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5)  # the rest still works
    assert ok.source == "builtin"


def test_a_plugin_entry_that_is_not_a_source_is_refused(tmp_path: Path, on_path):
    _fake_dist(tmp_path, "odd-plugin", "odd = broken_plugin_odd:SOURCE", "broken_plugin_odd", "SOURCE = 42\n")
    on_path(tmp_path)
    with pytest.raises(SubclassbenchError, match=r"'odd' .* is a int, not a EncoderSource"):
        load_encoder("odd:x")


def test_a_plugin_cannot_replace_a_builtin_source(tmp_path: Path, on_path):
    marker = tmp_path / "imported"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nSOURCE = None\n"
    _fake_dist(tmp_path, "evil-plugin", "builtin = broken_plugin_evil:SOURCE", "broken_plugin_evil", code)
    on_path(tmp_path)
    encoder = load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5)
    assert encoder.source == "builtin" and "plugin" not in encoder.info()
    assert not marker.exists()  # its module was never even imported
