"""core/network.py: the hub is probed once, so an offline run fails at once with our own message."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core import network


@pytest.fixture
def online(monkeypatch):
    """The hub switches off (conftest turns them on for the suite) and a fresh probe."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    network._reachable.cache_clear()
    yield monkeypatch
    network._reachable.cache_clear()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


def test_a_listening_endpoint_is_reachable_and_a_closed_one_is_not(online):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert network.hub_reachable()
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert not network.hub_reachable()
    online.setenv("HF_ENDPOINT", "not a url")
    assert not network.hub_reachable()


def test_offline_switches_skip_the_probe(online):
    online.setenv("HF_HUB_OFFLINE", "1")
    online.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed although offline was asked"))
    assert not network.hub_reachable()


def test_a_hub_task_without_network_fails_before_any_hub_client_runs(online):
    """Without --data and without a network: our one error line, not the hub client's retries first."""
    import datasets

    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    online.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the hub client ran"))
    args = ["evaluate", "--quiet", "--task", "cifar10-5", "--model", "builtin:cifar_resnet20"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--data" in lines[0]
    assert "Retrying" not in result.output


def test_hub_weights_without_network_are_read_from_the_local_cache_only(online):
    import huggingface_hub

    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    asked = {}

    def snapshot(*args, **kwargs):
        asked.update(kwargs)
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the local cache")

    online.setattr(huggingface_hub, "snapshot_download", snapshot)
    from subclassbench.encoders.hub import resolve
    from subclassbench.errors import SubclassbenchError

    with pytest.raises(SubclassbenchError, match="from the Hugging Face Hub or its local cache"):
        resolve("org/name", None, ["*.safetensors"])
    assert asked["local_files_only"] is True
