"""A small named registry (timm-style): encoder sources and data sources register entries here.

Everything about a source (its loader, its cache identity, what it supports)
lives on its entry, so no other module compares source names as strings.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from subclassbench.errors import SubclassbenchError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order.

    ``providers`` are modules imported on first lookup, so sources defined in
    modules that would otherwise import this one (circularly) still register.
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._providers = providers
        self._loaded = not providers

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def _load_providers(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._providers:
                importlib.import_module(module)

    def get(self, name: str, hint: str = "") -> T:
        """The entry, or a one-line error listing the valid names."""
        self._load_providers()
        if name not in self._entries:
            raise SubclassbenchError(f"unknown {self.kind} '{name}'{hint}; valid: {closest(name, self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load_providers()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._entries

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load_providers()
        return iter(list(self._entries.items()))
