"""Hugging Face Hub weights, tied to the exact files that produced a result.

A hub name alone does not identify weights: a repository's ``main`` moves.
Every hub-backed source (``hf:``, and ``timm:`` / ``open_clip:`` weights that
live on the hub) resolves its files here: the requested revision (a branch,
tag or commit; ``main`` when none is pinned) becomes the commit it points to,
and each weights file's sha256 is computed. Both go into the result's
``encoder.weights.hub`` record and a submission's ``model.yaml``, and the
sha256 keys the feature cache, so the same numbers always come from the same
bytes. Offline (``HF_HUB_OFFLINE=1``) the local Hugging Face cache answers,
with the same resolution.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subclassbench.core.hashing import sha256_file
from subclassbench.core.network import hub_reachable
from subclassbench.errors import SubclassbenchError, first_line

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".npz")
LOCAL_REVISION = "local"  # a snapshot folder that is not <cache>/snapshots/<commit>: no commit to name


@dataclass(frozen=True)
class HubFiles:
    """A resolved hub snapshot: where its files are here and what they are."""

    repo: str
    requested: str | None  # the revision asked for (None: the repository's default branch)
    revision: str  # the commit it resolved to
    folder: Path
    files: dict[str, str]  # weights file (relative path) → sha256

    @property
    def sha256(self) -> str:
        """One digest for the weights: the file's own for one file, else over the sorted (name, sha256) list."""
        if len(self.files) == 1:
            return next(iter(self.files.values()))
        return hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(self.files.items())).encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """The ``weights`` record of a result: content hash, format and the hub identity."""
        return {
            "sha256": self.sha256,
            "format": "hub",
            "hub": {"repo": self.repo, "revision": self.revision, "requested": self.requested, "files": self.files},
        }

    @property
    def main_file(self) -> Path:
        """The first weights file (the only one when a single file was asked for)."""
        return self.folder / next(iter(self.files))


def check_revision(revision: str | None) -> None:
    if revision is not None and (not REVISION.fullmatch(revision) or ".." in revision):
        raise SubclassbenchError(
            f"revision {revision!r} is not a branch, tag or commit name; use e.g. @main or @<40-hex commit>"
        )


def resolve(repo: str, revision: str | None, patterns: list[str], weights: bool = True) -> HubFiles:
    """Download (or find in the local cache) the files of ``repo`` matching ``patterns`` at ``revision``;
    with ``weights`` the snapshot must hold weights files."""
    if not REPO_ID.fullmatch(repo) or ".." in repo:
        raise SubclassbenchError(f"'{repo}' is not a Hugging Face repository id; use ORG/NAME")
    check_revision(revision)
    from huggingface_hub import snapshot_download

    try:
        # Without a network only the local cache can answer: ask it alone, not after the client's retries.
        local_only = not hub_reachable()
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=patterns, local_files_only=local_only))
    except Exception as exc:  # offline and not cached, unknown repo or revision, network errors
        at = f"@{revision}" if revision else ""
        raise SubclassbenchError(
            f"cannot get {repo}{at} from the Hugging Face Hub or its local cache ({first_line(exc, 120)}); "
            "download it once online or check the name and revision; else pass --weights FILE, or --random-init "
            "for an untrained model"
        ) from None
    # snapshot_download returns <cache>/models--org--name/snapshots/<commit>; a local folder has no commit.
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else LOCAL_REVISION
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES
    }
    if weights and not files:
        raise SubclassbenchError(f"{repo}@{commit} holds no weights files ({', '.join(patterns)})")
    return HubFiles(repo, revision, commit, folder, files)


def resolve_first(repo: str, revision: str | None, candidates: tuple[str, ...]) -> HubFiles:
    """The first of ``candidates`` that the repository holds at ``revision``, resolved and hashed."""
    last: SubclassbenchError | None = None
    for name in candidates:
        try:
            return resolve(repo, revision, [name])
        except SubclassbenchError as exc:
            last = exc
    assert last is not None
    raise last
