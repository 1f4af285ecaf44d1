"""The transfer family: per-layer linear probes in distribution, under subpopulation shift and on OOD sets.

It needs the task's transfer block and the splits it names (the probes train on the train split),
and it reads each OOD set of that block from its own task: ``--data`` when the OOD set is drawn
from the same dataset, else ``--ood-data NAME=PATH``. Its probes train in this process while the
clusterability family's units run in the worker pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.core.progress import stage
from subclassbench.errors import DataMissingError, SubclassbenchError
from subclassbench.scoring.family import METRIC_FAMILIES, DataPlan, FamilyRun, MetricFamily, Scored, ScoringInputs
from subclassbench.scoring.samples import ProbeSamples
from subclassbench.scoring.transfer import LayerTransfer, TransferPlan, ood_key, score_transfer, summarize_transfer
from subclassbench.tasks.task import OODSet, SplitData, Task, load_task


def check_ood_sets(task: Task, named_data: dict[str, str] | None) -> list[tuple[OODSet, Task]]:
    """Each OOD set's task, checked before any data is read: it exists, has the splits named, and shares no
    class with the task (else its "OOD" accuracy would be in-distribution)."""
    if task.transfer is None:
        if named_data:
            raise SubclassbenchError(f"--ood-data: task '{task.name}' lists no OOD sets")
        return []
    known = {o.name for o in task.transfer.ood_sets}
    unknown = sorted(set(named_data or {}) - known)
    if unknown:
        raise SubclassbenchError(
            f"--ood-data names OOD set '{unknown[0]}', which task '{task.name}' does not list; "
            f"its OOD sets: {sorted(known) or 'none'}"
        )
    out = []
    for ood in task.transfer.ood_sets:
        ood_task = load_task(ood.task, by_name_only=True)
        shared = sorted(task.class_keys() & ood_task.class_keys())
        if shared:
            raise SubclassbenchError(
                f"task '{task.name}': OOD set '{ood.name}' shares classes with the task itself "
                f"(class {shared[0][1]} of {shared[0][0]}); an OOD set's classes must be disjoint from the task's"
            )
        for split in (ood.train_split, ood.test_split):
            if split not in ood_task.splits:
                raise SubclassbenchError(
                    f"task '{task.name}': OOD set '{ood.name}' uses split '{split}', which task '{ood_task.name}' "
                    f"does not have ({list(ood_task.splits)})"
                )
        out.append((ood, ood_task))
    return out


def trained_on(card: dict[str, Any] | None) -> set[tuple[str, str]] | None:
    """The (dataset, class) pairs an encoder's training covered, when its card names the task; else None."""
    name = (card or {}).get("task")
    if not isinstance(name, str):
        return None
    try:
        return load_task(name, by_name_only=True).class_keys()
    except SubclassbenchError:
        return None


class Transfer(MetricFamily):
    name = "transfer"
    takes_named_data = True

    def unsupported(self, task: Task) -> str | None:
        if task.transfer is not None:
            return None
        return f"task '{task.name}' defines no transfer splits; use --metrics clusterability or add a transfer block"

    def check(self, task: Task, named_data: dict[str, str] | None) -> None:
        check_ood_sets(task, named_data)

    def load_splits(self, plan: DataPlan) -> bool:
        try:
            for name in TransferPlan.splits_needed(plan.task):
                if name not in plan.splits:
                    plan.splits[name] = plan.load(name)
        except DataMissingError as exc:
            if plan.explicit:  # asked for explicitly: its absence is an error
                raise SubclassbenchError(f"transfer needs the task's train split: {exc}") from None
            plan.notes.append(f"transfer skipped (needs the train split; pass --data with every split): {exc}")
            return False
        return True

    def load_extra_splits(
        self, task: Task, data: str | None, named_data: dict[str, str] | None, notes: list[str]
    ) -> dict[str, SplitData]:
        """Every OOD set's train and test split; a set whose data is absent is left out, with a note.

        ``--data`` serves an OOD set only when it is the same dataset as the task
        (e.g. cifar10-ood5 beside cifar10-id5); another dataset needs its own
        ``--ood-data NAME=PATH`` (or the Hub), so no file is read as the wrong data.
        """
        out: dict[str, SplitData] = {}
        for ood, ood_task in check_ood_sets(task, named_data):
            same_dataset = ood_task.dataset_identity == task.dataset_identity
            path = (named_data or {}).get(ood.name, data if same_dataset else None)
            try:
                loaded = {s: ood_task.load_split(s, path, primary=False) for s in (ood.train_split, ood.test_split)}
            except DataMissingError as exc:
                notes.append(f"OOD set '{ood.name}' left out (no data; pass --ood-data {ood.name}=PATH): {exc}")
                continue
            out.update({ood_key(ood.name, s): d for s, d in loaded.items()})
        return out

    def start(self, inputs: ScoringInputs) -> FamilyRun:
        return _TransferRun(inputs)


class _TransferRun(FamilyRun):
    def __init__(self, inputs: ScoringInputs) -> None:
        self.inputs = inputs
        self.plan = TransferPlan.from_task(inputs.task, inputs.splits, inputs.extra_splits)
        ood = f" and {len(self.plan.ood)} OOD set(s)" if self.plan.ood else ""
        n_layers = len(inputs.features[inputs.evaluation.split])
        stage(f"transfer probes on {n_layers} layers (ID{ood})", inputs.progress)
        self.transferred: list[LayerTransfer] = []

    def run(self) -> None:
        self.transferred = score_transfer(
            self.inputs.features, self.plan, device=self.inputs.device, progress=self.inputs.progress
        )

    def finish(self, scored: Scored) -> None:
        for entry, layer_transfer in zip(scored.per_layer, self.transferred, strict=True):
            entry[Transfer.name] = layer_transfer.scores
        for name, test_set in self.plan.test_sets().items():
            pred = np.stack([t.predictions[name] for t in self.transferred])
            scored.samples.probes[name] = ProbeSamples(np.asarray(test_set.labels, dtype=np.int64), pred)
        detail = summarize_transfer(self.inputs.layers, [e[Transfer.name] for e in scored.per_layer], self.plan)
        seen = trained_on(self.inputs.encoder_card)
        ood_tasks = {data.task.name: data.task for data in self.inputs.extra_splits.values()}
        for entry in detail["ood_sets"]:
            entry["seen_in_training"] = None if seen is None else bool(seen & ood_tasks[entry["task"]].class_keys())
        scored.summary.update(
            ood_retained=detail["ood_retained"],
            tunnel=detail["tunnel"],
            pearson_id_ood=detail["pearson_id_ood"],
            transfer=detail,
        )


METRIC_FAMILIES.register(Transfer.name, Transfer())
