"""YAML from users and submissions, parsed safely: no code, no anchors and aliases, a size limit.

``yaml.safe_load`` already refuses to construct arbitrary objects. What it
allows is an "alias bomb" (a few lines of nested anchors that expand to
billions of nodes and hang whatever walks the result) and unbounded input.
subclassbench's own files never use anchors, so any alias is refused as soon
as the parser meets it, and files above :data:`MAX_BYTES` are refused unread.
A key given twice in one mapping is refused too: YAML says keys are unique,
and a parser that keeps the last one would show a reader one value and the
tool another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from subclassbench.errors import SubclassbenchError, first_line

MAX_BYTES = 16 * 1024 * 1024  # the largest shipped task file is well under 1 MiB
TOO_LARGE = f"is larger than {MAX_BYTES // (1024 * 1024)} MiB; it is not a subclassbench file"


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # types-PyYAML leaves peek_event unannotated
            raise yaml.YAMLError(f"YAML aliases are not allowed (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str | int | float | bool) or key is None:
                    if key in seen:
                        raise yaml.YAMLError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1})")
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads(text: str, where: str) -> Any:
    """Parse YAML text; any problem is one line naming the file."""
    if len(text) > MAX_BYTES:
        raise SubclassbenchError(f"{where} {TOO_LARGE}")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:  # bad dates, huge ints, deep nests
        reason = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc)
        raise SubclassbenchError(f"cannot parse YAML in {where}: {reason}; fix the file") from None


def load_file(path: Path) -> Any:
    """Read and parse a YAML file (size checked before reading)."""
    from subclassbench.core.files import read_bounded

    data = read_bounded(path, "file", MAX_BYTES)  # a regular file, never a FIFO or a device, within the limit
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise SubclassbenchError(f"cannot read {path}: {first_line(exc)}") from None
    return loads(text, str(path))
