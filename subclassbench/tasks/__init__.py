"""Tasks as data: a task file → :class:`Task` (hierarchy, splits, fingerprint) and the sources of its images.

- :mod:`~subclassbench.tasks.task`: task files, :class:`Task`, split resolution and fingerprints.
- :mod:`~subclassbench.tasks.datasources`: the data-source registry (digits, synthetic, npz, folders, HF datasets).
- :mod:`~subclassbench.tasks.imagenet`: the ImageNet source for BREEDS tasks.
- :mod:`~subclassbench.tasks.breeds`: BREEDS hierarchy → frozen task files, shuffled controls.
- ``builtin/``: the shipped task files (package data).
"""

from subclassbench.tasks.datasources import DATA_SOURCES, DataSource, ImageSet
from subclassbench.tasks.task import OODSet, SplitData, Task, builtin_tasks_dir, list_tasks, load_task

__all__ = [
    "DATA_SOURCES",
    "DataSource",
    "ImageSet",
    "OODSet",
    "SplitData",
    "Task",
    "builtin_tasks_dir",
    "list_tasks",
    "load_task",
]
