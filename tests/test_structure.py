"""The package's architecture: shipped tasks, one I/O path, registries, the typed result, honest docs."""

from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import typing
import zipfile

import pytest

from subclassbench.core.files import atomic_write, atomic_write_many, locked
from subclassbench.core.registry import Registry
from subclassbench.encoders.base import ENCODER_SOURCES, EncoderSpec
from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import (
    MIGRATIONS,
    SCHEMA_VERSION,
    EncoderRecord,
    LayerRecord,
    Result,
    ResultDoc,
    TaskRecord,
)
from subclassbench.schemas import load_schema
from subclassbench.tasks.datasources import DATA_SOURCES
from subclassbench.tasks.task import builtin_tasks_dir, list_tasks, load_task
from tests.conftest import REPO

PACKAGE = REPO / "subclassbench"


@pytest.mark.slow
def test_a_wheel_ships_every_builtin_task(tmp_path):
    """Built into a wheel and imported from it alone, the package lists and loads every shipped task."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("subclassbench-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    env = {k: v for k, v in os.environ.items() if k != "SUBCLASSBENCH_TASKS"}
    env["PYTHONPATH"] = str(unpacked)
    script = (
        "import json, subclassbench.tasks.task as t; "
        "print(json.dumps([t.__file__, t.list_tasks(), [t.load_task(n).name for n in t.list_tasks()]]))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    where, names, loaded = json.loads(listed.stdout)
    assert where.startswith(str(unpacked))  # imported from the wheel, not the checkout
    shipped = sorted(p.stem for p in builtin_tasks_dir().glob("*.yaml"))
    assert names == loaded == shipped and len(shipped) >= 12


def test_user_task_folders_come_first_and_add_tasks(tmp_path, monkeypatch):
    raw = (builtin_tasks_dir() / "digits-5.yaml").read_text()
    (tmp_path / "my-digits.yaml").write_text(raw.replace("name: digits-5", "name: my-digits"))
    monkeypatch.setenv("SUBCLASSBENCH_TASKS", str(tmp_path))
    assert "my-digits" in list_tasks() and "cifar10-5" in list_tasks()
    assert load_task("my-digits").name == "my-digits"


# --------------------------------------------------------------------------- the import graph


def _modules() -> dict[str, pathlib.Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, pathlib.Path]) -> list[tuple[str, str, str | None]]:
    """(importer, imported module, imported name or None) for every import of the package's own modules, at any
    depth: module level, inside functions and under ``if TYPE_CHECKING``, so that none can hide a cycle."""
    edges = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package, up level - 1 more
                    up = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
                targets = [
                    (f"{base}.{alias.name}", None) if f"{base}.{alias.name}" in modules else (base, alias.name)
                    for alias in node.names
                ]
            else:
                continue
            for target, name in targets:
                while target and target not in modules:  # a name inside a module: that module
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.append((module, target, name))
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_another_in_a_cycle():
    """Counting imports inside functions and under TYPE_CHECKING: a deferred import still couples two modules."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for importer, imported, _ in _imports(modules):
        if imported.startswith("subclassbench"):
            graph[importer].add(imported)
    assert _cycles(graph) == []


def test_the_subpackages_form_layers():
    """No subpackage imports one that imports it back: the folders read as layers (README, Layout)."""
    def folder(module: str) -> str:
        """A subpackage, or a module at the top (``errors``; the package's own ``__init__`` is ``subclassbench``)."""
        return module.split(".")[1] if "." in module else module

    modules = _modules()
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in _imports(modules):
        if imported.startswith("subclassbench") and folder(importer) != folder(imported):
            graph.setdefault(folder(importer), set()).add(folder(imported))
            graph.setdefault(folder(imported), set())
    assert _cycles(graph) == []
    assert {"core", "tasks", "encoders", "scoring", "results", "evaluation", "leaderboard"} <= set(graph)


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{importer} imports {name} from {imported}"
        for importer, imported, name in _imports(_modules())
        if imported.startswith("subclassbench") and name and name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_the_structure_tests_see_deferred_imports(tmp_path):
    """The import graph above counts an import inside a function, and finds the cycle it closes."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    source = "def f():\n    from subclassbench.core import files\n"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "subclassbench.core" for n in ast.walk(tree))


# --------------------------------------------------------------------------- files


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two" and sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_a_failed_file_set_writes_nothing(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("old")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(SubclassbenchError, match="nothing was written"):
        atomic_write_many({good: b"new", blocker / "b.txt": b"new"})
    assert good.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "not-a-folder"]


def test_a_held_lock_is_one_line_error(tmp_path):
    with locked(tmp_path / "board"), pytest.raises(SubclassbenchError, match="locked by another"):
        with locked(tmp_path / "board", timeout_s=0.1):
            pass
    assert not (tmp_path / "board").exists()  # the lock lives beside the folder, never inside it


def test_every_write_goes_through_files_py():
    """No module renames temporary files by hand: files.py is the one place that does."""
    pattern = re.compile(r"os\.replace|\.replace\(tmp|tmp\.write_|with_suffix\([^)]*tmp|\+ \"\.tmp\"")
    offenders = [
        str(p.relative_to(REPO))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "files.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


# --------------------------------------------------------------------------- registries


def test_source_registries_know_their_sources():
    assert ENCODER_SOURCES.names()[:5] == ["builtin", "timm", "open_clip", "hf", "module"]
    assert set(DATA_SOURCES.names()) == {"sklearn_digits", "synthetic_hierarchy", "image_classification", "imagenet"}
    assert EncoderSpec.parse("open_clip:ViT-B-32@openai").tag == "openai"
    assert EncoderSpec.parse("timm:resnet18.a1_in1k").tag == "a1_in1k"
    # Hub revisions: a trailing @REV; open_clip's first '@' is its tag separator.
    assert EncoderSpec.parse("timm:resnet18.a1_in1k@v2") == EncoderSpec("timm", "resnet18", "a1_in1k", "v2")
    assert EncoderSpec.parse("open_clip:ViT-B-32@openai@abc") == EncoderSpec("open_clip", "ViT-B-32", "openai", "abc")
    assert EncoderSpec.parse("hf:google/vit-base-patch16-224@main") == EncoderSpec(
        "hf", "google/vit-base-patch16-224", None, "main"
    )
    assert str(EncoderSpec.parse("open_clip:ViT-B-32@openai@abc")) == "open_clip:ViT-B-32@openai@abc"
    assert EncoderSpec.parse("builtin:cifar_resnet20.x").revision is None
    with pytest.raises(SubclassbenchError, match="is not a branch, tag or commit"):
        EncoderSpec.parse("hf:org/name@../../etc")
    with pytest.raises(SubclassbenchError, match="unknown model source 'hub'"):
        EncoderSpec.parse("hub:x")
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", 2)


def test_no_source_name_is_compared_outside_its_registry():
    names = [*ENCODER_SOURCES.names(), *DATA_SOURCES.names()]
    pattern = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](""" + "|".join(map(re.escape, names)) + r""")["']""")
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and "name !=" not in line
    ]
    assert offenders == [], "compare source names through the registry entries instead"


# --------------------------------------------------------------------------- the typed result


@pytest.mark.parametrize(
    ("typed", "where"),
    [
        (ResultDoc, ()),
        (TaskRecord, ("task",)),
        (EncoderRecord, ("encoder",)),
        (LayerRecord, ("layers", "items")),
    ],
)
def test_typed_result_agrees_with_the_schema(typed, where):
    schema = load_schema("result")
    node = schema
    for step in where:
        node = node["properties"][step] if step != "items" else node["items"]
    keys = set(typing.get_type_hints(typed))
    assert set(node.get("required", [])) <= keys
    assert keys <= set(node.get("properties", {})) | set(node.get("required", []))


def test_result_files_migrate_or_fail_naming_the_fix(tmp_path, monkeypatch):
    source = next((REPO / "submissions").glob("*/results/digits-5.json"))
    doc = json.loads(source.read_text())
    shutil.copy(source.with_name("digits-5.samples.npz"), tmp_path / "old.samples.npz")  # travels with its result
    doc["samples"]["file"] = "old.samples.npz"
    old = {**doc, "schema_version": "0.9"}
    monkeypatch.setitem(MIGRATIONS, "0.9", (SCHEMA_VERSION, lambda d: {**d, "schema_version": SCHEMA_VERSION}))
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert Result.read(path).task_name == "digits-5"
    path.write_text(json.dumps({**doc, "schema_version": "9.0"}))
    with pytest.raises(SubclassbenchError, match="upgrade subclassbench"):
        Result.read(path)


# --------------------------------------------------------------------------- docs


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_docs_name_only_what_exists():
    """Every ``subclassbench.…`` name and ``subclassbench/….py`` path the docs and README mention exists."""
    texts = {p: p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
    names = {m for text in texts.values() for m in re.findall(r"\bsubclassbench(?:\.[A-Za-z_]\w*)+", text)}
    paths = {m for text in texts.values() for m in re.findall(r"\bsubclassbench/[\w/]+\.(?:py|yaml)\b", text)}
    assert names and paths
    groups = {ENCODER_SOURCES.plugin_group}  # entry-point group names are names, not Python objects
    assert sorted(n for n in names - groups if not _resolves(n)) == []
    assert sorted(p for p in paths if not (REPO / p).exists()) == []
