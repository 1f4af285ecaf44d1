"""The frozen protocol (subclassbench.scoring.protocol): the fingerprint covers every parameter, v2 is its own
version and v1 stays frozen."""

from __future__ import annotations

import copy

from subclassbench.scoring.protocol import PROTOCOL, protocol_fingerprint, protocol_v1_fingerprint

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


def test_protocol_v2_is_its_own_version_and_v1_stays_frozen():
    assert PROTOCOL["version"] == "2" and protocol_fingerprint() != protocol_v1_fingerprint()
    assert protocol_v1_fingerprint().startswith("d9eae7dacb55")  # the fingerprint the v1 board records
    assert "holdout" in PROTOCOL["transfer"]["epoch_selection"]
