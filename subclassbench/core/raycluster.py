"""Joining or starting a Ray cluster for the commands that spread work over it (``run``, ``train-runs``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from subclassbench.errors import SubclassbenchError


@contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address`` (``ray start`` / Slurm / KubeRay) or to a local cluster
    of ``num_cpus`` CPUs and ``num_gpus`` GPUs (default: what the machine has). A cluster started here is shut
    down on leaving; one already initialised by the caller is used as it is."""
    try:
        import ray
    except ImportError:
        raise SubclassbenchError("--executor ray needs Ray: pip install 'subclassbench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        local = address is None
        ray.init(
            address=address,
            num_cpus=num_cpus if local else None,
            num_gpus=num_gpus if local else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
