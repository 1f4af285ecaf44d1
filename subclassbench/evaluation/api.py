"""The Python API: one call evaluates any encoder on any task, exactly as ``subclassbench evaluate`` does.

    import subclassbench
    result = subclassbench.evaluate(model=my_module, task="digits-5", preprocess={"input_size": (1, 8, 8)})
    result.summary["committed_ami"], result.to_pandas()    # headline numbers; one row per layer

``model`` is a spec string (``builtin:…``, ``timm:…``, ``open_clip:…``,
``hf:…``, a plug-in's ``name:…``) or an ``nn.Module``. Either way the same
pipeline runs (same protocol, same schema, same feature cache), so a number
from Python and one from the command line mean the same thing. Errors are
:class:`~subclassbench.errors.SubclassbenchError` with the one-line message
the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from subclassbench.core.progress import requested
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import evaluate as run_evaluation
from subclassbench.evaluation.pipeline import evaluate_to_file
from subclassbench.evaluation.request import DEFAULT_MODEL, DEFAULT_TASK, EvaluationRequest
from subclassbench.results.result import Result
from subclassbench.uncertainty.bootstrap import BOOTSTRAP


def evaluate(
    model: Any = DEFAULT_MODEL,
    task: str = DEFAULT_TASK,
    *,
    layers: list[str] | None = None,
    preprocess: Preprocessing | Mapping[str, Any] | None = None,
    embed: Callable[[Any], Any] | None = None,
    name: str | None = None,
    weights: str | Path | None = None,
    data: str | Path | None = None,
    device: str = "cpu",
    metrics: list[str] | None = None,
    bootstrap: int = int(BOOTSTRAP["resamples"]),
    limit: int | None = None,
    batch_size: int = 256,
    pretrained: bool = True,
    cache: str = "use",
    cache_dir: str | Path | None = None,
    progress: bool = False,
    out: str | Path | None = None,
    force: bool = False,
    **options: Any,
) -> Result:
    """Score every layer of ``model`` on ``task`` under the protocol; return the validated :class:`Result`.

    ``model``: a spec string or an ``nn.Module``. For a module, ``name`` names it in the result
    (``module:<name>``; default: its class name), ``preprocess`` is its input transform (a
    :class:`~subclassbench.encoders.preprocessing.Preprocessing` or its fields ``input_size``, ``mean``,
    ``std``, ``interpolation``, ``crop_pct``; default: the task's [0, 1] samples at their native
    size) and ``embed`` maps a batch to its embedding (default: timm's pre-logits, else the input of
    the module's linear ``fc``/``head``/``classifier``, else its output). ``layers`` names modules
    to read (default: discovered). ``out`` also writes the result JSON and its per-sample file.
    Further keyword ``options`` are :class:`~subclassbench.evaluation.pipeline.EvaluationRequest` fields
    (``split``, ``ood_data``, ``dtype``, ``channels_last``, ``workers``, ``decoder`` …).
    """
    request_fields = set(EvaluationRequest.__dataclass_fields__)
    unknown = sorted(set(options) - request_fields)
    if unknown:
        raise SubclassbenchError(f"evaluate() got an unknown option '{unknown[0]}'")
    reserved = sorted(set(options) & {"module", "model", "progress"})
    if reserved:
        raise SubclassbenchError(f"evaluate(): pass '{reserved[0]}' as its own argument")
    if isinstance(model, str):
        if name is not None:
            raise SubclassbenchError("name= names an nn.Module; a spec string names itself")
        spec, module = model, None
    else:
        from subclassbench.encoders.module import check_model_name

        spec, module = f"module:{check_model_name(name or type(model).__name__)}", model
    request = EvaluationRequest(
        model=spec,
        task=task,
        weights=None if weights is None else str(weights),
        data=None if data is None else str(data),
        layers=layers,
        batch_size=batch_size,
        device=device,
        pretrained=pretrained,
        progress=progress,
        metrics=metrics,
        cache=cache,
        cache_dir=None if cache_dir is None else str(cache_dir),
        bootstrap=bootstrap,
        limit=limit,
        module=module,
        preprocess=preprocess,
        embed=embed,
        **options,
    )
    with requested() if progress else nullcontext():  # asked for from Python: shown in Jupyter and logs too
        if out is not None:
            result, _ = evaluate_to_file(request, Path(out), force=force)
            return result
        return run_evaluation(request)
