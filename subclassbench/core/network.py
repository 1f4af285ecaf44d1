"""Whether the Hugging Face Hub can be reached, asked once per process before any hub client is.

Without a network the hub clients retry for tens of seconds ("Retrying in 8s") before they fail, and
their chatter lands on the user's screen ahead of our own ``error:`` line. A two-second TCP connection
to the hub's endpoint answers the same question at once, so the data and weights loaders can say what
to do instead (``--data``, ``--weights``) or read the local cache only.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 2.0
DEFAULT_ENDPOINT = "https://huggingface.co"


def offline_requested() -> bool:
    """The user said so: the hub libraries' own switches."""
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"


@functools.cache
def _reachable(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError:  # refused, unreachable, no DNS, timed out
        return False
    return True


def hub_reachable() -> bool:
    """False when offline was requested or the hub's endpoint (``HF_ENDPOINT``) does not accept a connection."""
    if offline_requested():
        return False
    return _reachable(os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT))
