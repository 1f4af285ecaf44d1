"""The typed result (subclassbench.results.result): protocol v1 results name the fix, fuzzed result files read
or fail with one line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result
from tests.conftest import REPO
from tests.fuzzing import FUZZ, mutated, paths, reads_or_fails_cleanly, values

# --------------------------------------------------------------------------- protocol v1 results


def test_a_protocol_v1_result_names_the_fix(tmp_path):
    archived = sorted((REPO / "leaderboard/v1/results").glob("*/*.json"))[0]
    with pytest.raises(SubclassbenchError, match=r"protocol v1 result.*re-run the evaluation"):
        Result.read(archived)


# --------------------------------------------------------------------------- fuzzed result files


RESULT = json.loads((REPO / "submissions" / "digits-cnn-coarse" / "results" / "digits-5.json").read_text())
RESULT_PATHS = paths(RESULT)


@FUZZ
@given(st.sampled_from(RESULT_PATHS), values, st.booleans())
def test_fuzzed_result_files(where, value, delete):
    doc = mutated(RESULT, where, value, delete)
    reads_or_fails_cleanly(lambda: Result.from_doc(doc))
