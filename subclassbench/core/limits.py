"""Limits on sizes and numbers from users, checked before any work starts (docs/limits.md lists them all).

Without them an absurd value does not fail: it hangs (k-means with a million clusters, a runs file that expands
to a billion runs), exhausts memory (a probe on a million-wide embedding) or is silently changed (a seed
beyond 64 bits wrapped by a generator, NaN that compares false with every bound). Each limit sits far above
any real use and is named in its error, with the fix.
"""

from __future__ import annotations

import math

from subclassbench.errors import SubclassbenchError

MAX_SEED = 2**63 - 1  # seeds are stored as JSON integers and handed to torch and numpy generators (int64)
MAX_CLASSES = 100_000  # subclasses in one task: ImageNet-21k has 21,841
MAX_SUBCLASSES_PER_SUPERCLASS = 1_000  # k of one superclass's k-means; BREEDS' largest has 132
MAX_RUNS = 10_000  # runs one runs file may expand to (lists multiply)
MAX_FEATURE_WIDTH = 1 << 18  # one layer's pooled width: raw 224 px RGB pixels (150,528) fit; probes hold N × width


def check_seed(seed: object, what: str = "--seed") -> int:
    """A seed: an integer in [0, 2**63 - 1], or one error line."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise SubclassbenchError(f"{what} must be an integer from 0 to 2**63 - 1 ({MAX_SEED}), got {seed!r}")
    return seed


def check_finite(value: float, what: str) -> float:
    """A real number (not NaN or infinite): NaN passes every ``<`` and ``>`` check, so it is caught here."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise SubclassbenchError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_range(value: float, what: str, low: float, high: float | None = None) -> float:
    """A finite number in ``[low, high]`` (``high`` None: no upper bound), or one error line."""
    check_finite(value, what)
    if value < low or (high is not None and value > high):
        bound = f"≥ {low:g}" if high is None else f"between {low:g} and {high:g}"
        raise SubclassbenchError(f"{what} must be {bound}, got {value!r}")
    return float(value)
