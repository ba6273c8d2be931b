"""The node id: which replica's file offsets are which (`state: {node_id}`).

Replicas that share one database each tail their own log files, under the same input names and
paths (and, on identical images, sometimes the same inode numbers), so the store keeps file
offsets and the "first run" memory per node (bridge/store/tailstate.py). The id must therefore be
stable across restarts of the same host and differ between hosts: the host name by default
(a pod's name in Kubernetes, a machine's elsewhere), or whatever the config says, e.g.
`node_id: ${NODE_NAME}`.

It appears in `/-/ready`, `check` and log lines as `node=...`, hence the limits: printable, no
white space, at most MAX_LENGTH characters (a Kubernetes object name fits).
"""

from __future__ import annotations

import socket

MAX_LENGTH = 253
FALLBACK = "localhost"  # a host without a name (an empty gethostname) still gets one id


def from_host() -> str:
    """The default node id: this host's name."""
    return socket.gethostname() or FALLBACK


def problem(value: str) -> str | None:
    """What is wrong with `value` as a node id that the schema cannot say (None: nothing): the
    schema already refuses an empty one, white space and more than MAX_LENGTH characters;
    a control character (other than white space) passes its pattern."""
    if not value.isprintable():
        return "holds a control character"
    return None
