"""The frozen protocol (subclassbench.scoring.protocol): the fingerprint covers every parameter, v2 is its own
version and v1 stays frozen."""

from __future__ import annotations

import copy

from subclassbench.scoring.protocol import (
    PROTOCOL,
    PROTOCOL_V2,
    protocol_fingerprint,
    protocol_v1_fingerprint,
    protocol_v2_fingerprint,
)

# --------------------------------------------------------------------------- the fingerprint


def test_protocol_fingerprint_covers_every_parameter(monkeypatch):
    before = protocol_fingerprint()
    for section, key, value in (
        ("clusterability", "n_init", 11),
        ("transfer", "epoch_selection", "the test set"),
        ("transfer", "tunnel_strength", {}),
    ):
        changed = copy.deepcopy(PROTOCOL)
        changed[section][key] = value
        monkeypatch.setattr("subclassbench.scoring.protocol.PROTOCOL", changed)
        assert protocol_fingerprint() != before


# --------------------------------------------------------------------------- protocol v2


def test_protocol_v3_is_its_own_version_and_v1_and_v2_stay_frozen():
    assert PROTOCOL["version"] == "3" and protocol_fingerprint() not in (
        protocol_v1_fingerprint(),
        protocol_v2_fingerprint(),
    )
    assert protocol_v1_fingerprint().startswith("d9eae7dacb55")  # the fingerprint the v1 board records
    assert protocol_v2_fingerprint().startswith("991c0660104b")  # the fingerprint the archived v2 board records
    assert "crossfit" not in str(PROTOCOL_V2) and "validation" in PROTOCOL_V2["clusterability"]["committed_layer"]
    assert "cross-fitted" in PROTOCOL["clusterability"]["committed_layer"]
    assert "holdout" in PROTOCOL["transfer"]["epoch_selection"]
