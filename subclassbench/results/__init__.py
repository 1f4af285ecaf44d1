"""Results: the typed result file, its per-sample sidecar, integrity, intervals and tables.

- :mod:`~subclassbench.results.result`: :class:`Result`, schema check, migrations, reading and writing.
- :mod:`~subclassbench.scoring.samples`: the per-sample sidecar (``<result>.samples.npz``).
- :mod:`~subclassbench.results.integrity`: a summary recomputed from its per-layer data.
- :mod:`~subclassbench.results.intervals`: bootstrap intervals from the per-sample outputs.
- :mod:`~subclassbench.results.tables`: results as one table (``load_results``).
- :mod:`~subclassbench.results.report`: one result as the terminal shows it (headline, per-layer table, legend).
"""

from subclassbench.results.result import SCHEMA_VERSION, Result, read_result
from subclassbench.results.tables import load_results

__all__ = ["SCHEMA_VERSION", "Result", "load_results", "read_result"]
