"""A small named registry (timm-style): encoder sources and data sources register entries here.

Everything about a source (its loader, its cache identity, what it supports)
lives on its entry, so no other module compares source names as strings.

Other packages add entries through Python entry points (``plugin_group``):
an installed distribution that declares, e.g.,
``[project.entry-points."subclassbench.encoder_sources"] mynets = "mypkg:SOURCE"``
makes ``mynets:…`` specs work without touching this package. A plug-in is
imported only when its name is first looked up, so a broken one fails only the
commands that use it, with one line naming its distribution.
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from typing import Generic, TypeVar

from subclassbench.errors import SubclassbenchError, closest, first_line

T = TypeVar("T")
PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")


class Registry(Generic[T]):
    """Entries by name, in registration order; plug-ins after the built-in entries.

    ``providers`` are modules imported on first lookup, so sources defined in
    modules that would otherwise import this one (circularly) still register.
    """

    def __init__(
        self,
        kind: str,
        providers: tuple[str, ...] = (),
        plugin_group: str | None = None,
        plugin_type: type | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._providers = providers
        self._loaded = False
        self.plugin_group = plugin_group
        self._plugin_type = plugin_type
        self._pending: dict[str, metadata.EntryPoint] = {}
        self.plugins: dict[str, str] = {}  # entry name → "distribution==version" of the plug-ins loaded

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def _load_providers(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._providers:
            importlib.import_module(module)
        if self.plugin_group is not None:
            # Built-in names win: an installed package cannot change what builtin: or timm: mean.
            for point in metadata.entry_points(group=self.plugin_group):
                if point.name not in self._entries and PLUGIN_NAME.fullmatch(point.name):
                    self._pending.setdefault(point.name, point)

    def refresh_plugins(self) -> None:
        """Look for newly installed plug-ins again (entry points are read once per process otherwise)."""
        self._loaded = False
        for name in list(self.plugins):
            self._entries.pop(name, None)
        self.plugins.clear()
        self._pending.clear()

    def _load_plugin(self, name: str) -> T:
        point = self._pending.pop(name)
        dist = point.dist
        origin = f"{dist.name}=={dist.version}" if dist is not None else point.value
        try:
            entry: T = point.load()  # whatever the entry point names; checked below when a type is set
        except (Exception, SystemExit) as exc:  # whatever a third-party import raises or exits with: one line
            raise SubclassbenchError(
                f"plug-in {self.kind} '{name}' (from {origin}) failed to load ({first_line(exc, 160)}); "
                f"reinstall or uninstall {dist.name if dist is not None else 'the package that declares it'}"
            ) from None
        if self._plugin_type is not None and not isinstance(entry, self._plugin_type):
            raise SubclassbenchError(
                f"plug-in {self.kind} '{name}' (from {origin}) is a {type(entry).__name__}, not a "
                f"{self._plugin_type.__name__}; its entry point must name one"
            )
        self._entries[name] = entry
        self.plugins[name] = origin
        return entry

    def get(self, name: str, hint: str = "") -> T:
        """The entry, or a one-line error listing the valid names."""
        self._load_providers()
        if name not in self._entries and name in self._pending:
            return self._load_plugin(name)
        if name not in self._entries:
            raise SubclassbenchError(f"unknown {self.kind} '{name}'{hint}; valid: {closest(name, self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load_providers()
        return [*self._entries, *(n for n in self._pending if n not in self._entries)]

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._entries or name in self._pending
