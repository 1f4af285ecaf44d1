"""subclassbench: how much subclass structure do an encoder's layers keep?"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from subclassbench.results import Result

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_results"]


def evaluate(*args: Any, **kwargs: Any) -> Result:
    """Score every layer of an encoder (a spec or an ``nn.Module``) on a task: :func:`subclassbench.api.evaluate`."""
    from subclassbench.api import evaluate as run

    return run(*args, **kwargs)


def load_results(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Result JSON files (or folders of them) as a DataFrame: see :func:`subclassbench.tables.load_results`."""
    from subclassbench.tables import load_results as load

    return load(paths)
