"""Safe YAML (subclassbench.core.safeyaml): fuzzed text reads or fails with one line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from subclassbench.core import safeyaml
from tests.fuzzing import FUZZ, reads_or_fails_cleanly


@FUZZ
@given(st.text(max_size=400))
def test_fuzzed_yaml_text(text):
    reads_or_fails_cleanly(lambda: safeyaml.loads(text, "fuzz.yaml"))
