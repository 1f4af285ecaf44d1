"""JSON Schemas for task files and result files, and a one-line validator."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_schema(name: str) -> dict[str, Any]:
    """``name`` is ``task`` or ``result``."""
    schema: dict[str, Any] = json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text())
    return schema


def first_error(instance: Any, name: str) -> str | None:
    """The first violation as ``at <path>: <message>``, or None when valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(name))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    at = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"at {at}: {err.message[:200]}"
