"""Listen addresses as operators write them: "host:port", "[v6]:port"."""

from __future__ import annotations

import ipaddress


def parse_listen(listen: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); raises ValueError."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f'"{listen}" is not host:port')
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # ValueError names the bad address
    elif not host:
        raise ValueError(f'"{listen}" has no host (use 0.0.0.0 to listen everywhere)')
    return host, port
