"""subclassbench: how much subclass structure do an encoder's layers keep?

The package, one concept a folder, lower layers first (none imports a layer above it):

- ``core/``: files, safe YAML, hashing, the registry, progress, worker processes, Ray.
- ``tasks/``: task files → ``Task``; the data sources; ImageNet and BREEDS; ``builtin/`` task files.
- ``encoders/``: ``source:name`` specs → model, preprocessing and named layers; plug-in sources.
- ``features/``: one forward pass per batch, every layer pooled; the feature cache.
- ``metrics/``: partitions, clustering back ends, layer geometry, representation similarity.
- ``scoring/``: the frozen protocol and its metric families (clusterability, transfer).
- ``uncertainty/``: the bootstrap, interval calibration, tie-aware ranks.
- ``results/``: the typed result, per-sample sidecar, integrity, intervals, tables.
- ``figures/``: every figure.
- ``evaluation/``: the pipeline, the Python API, model × task matrices.
- ``training/``, ``compare/``: reference encoders; comparing representations.
- ``leaderboard/``: submissions, the board and its site.
- ``reproductions/``: the papers' claims, one module each.
- ``cli/``: the command line, which parses and prints.

``evaluate`` and ``load_results`` are imported lazily, so ``import subclassbench`` stays light.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subclassbench.core.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from subclassbench.results.result import Result

__all__ = ["__version__", "evaluate", "load_results"]


def evaluate(*args: Any, **kwargs: Any) -> Result:
    """Score every layer of an encoder (a spec or an ``nn.Module``) on a task.

    See :func:`subclassbench.evaluation.api.evaluate`.
    """
    from subclassbench.evaluation.api import evaluate as run

    return run(*args, **kwargs)


def load_results(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Result JSON files (or folders of them) as a DataFrame: see :func:`subclassbench.results.tables.load_results`."""
    from subclassbench.results.tables import load_results as load

    return load(paths)
