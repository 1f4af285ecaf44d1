"""The six findings subclassbench standardises, as seven claims: one module per claim holds its plans per scale,
the analysis of its runs, and its registration.

Every analysis reads numbers the benchmark itself produced (result files scored under the protocol,
training cards and correctness logs), reports them per seed with the result's bootstrap interval and
across seeds as mean ± std with a t-interval, and decides a verdict by a rule written in its module, next to
the numbers it reads. The paper's figure is quoted beside ours; where this benchmark measures a quantity
differently from the paper (docs/protocol.md §5), the report says so.

- ``yang2023``: Yang, Steinhardt & Hu 2023, coarse labels keep the fine classes apart
- ``yang2023_schedule``: the same finding across learning rate × weight decay × training length
- ``nguyen2023_shuffled``: Nguyen & Kornblith 2023, unrelated subclasses stay more clusterable
- ``nguyen2023_architecture``: Nguyen & Kornblith 2023, ResNets vs ViTs; normalisation moves the best layer
- ``harun2024``: Harun et al. 2024, augmentation and more ID classes weaken the tunnel
- ``pliushch2022``: Pliushch et al. 2022, networks agree on what they learn first
- ``vielhaben2025``: Vielhaben et al. 2025, universal and unique concepts
- ``common``: base recipes, reading scored results, per-layer curves, and the registry (``register``)
"""

# isort: off
# Each claim module registers its claim on import: this order is list(CLAIMS), the order in which an
# unknown claim's error lists them. A test holds it.
from subclassbench.reproductions.claims import (
    yang2023,
    yang2023_schedule,
    nguyen2023_shuffled,
    nguyen2023_architecture,
    harun2024,
    pliushch2022,
    vielhaben2025,
)

# isort: on
from subclassbench.reproductions.claims.common import CLAIMS
from subclassbench.reproductions.claims.nguyen2023_shuffled import SHUFFLED_PAIRS, UNTRAINED
from subclassbench.reproductions.claims.yang2023_schedule import schedule_arm

__all__ = [
    "CLAIMS",
    "SHUFFLED_PAIRS",
    "UNTRAINED",
    "harun2024",
    "nguyen2023_architecture",
    "nguyen2023_shuffled",
    "pliushch2022",
    "schedule_arm",
    "vielhaben2025",
    "yang2023",
    "yang2023_schedule",
]
