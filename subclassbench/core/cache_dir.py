"""Where subclassbench keeps what it can recompute: the feature cache and the memoised file hashes."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SUBCLASSBENCH_CACHE"


def cache_root() -> Path:
    """``$SUBCLASSBENCH_CACHE``, else ``$XDG_CACHE_HOME/subclassbench/features`` (``~/.cache/…``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "subclassbench" / "features"
