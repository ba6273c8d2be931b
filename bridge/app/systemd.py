"""systemd's notify protocol (sd_notify(3)), without libsystemd: one datagram per state change
to $NOTIFY_SOCKET, and watchdog keep-alives when $WATCHDOG_USEC asks for them.

READY=1 once the listener serves; RELOADING=1 with MONOTONIC_USEC (as Type=notify-reload and
systemd ≥ 253 expect) before a reload and READY=1 after; STOPPING=1 on shutdown; WATCHDOG=1
every half watchdog period, but only while the bridge is healthy, so systemd restarts a wedged
daemon. Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("bridge.systemd")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written "@name"; its real address starts with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        self.watchdog_interval = (
            int(watchdog_usec) / 2_000_000 if watchdog_usec.isdigit() and for_us else None
        )
        self._next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:  # systemd gone or the socket unwritable: never fatal
            log.warning("cannot notify systemd: %s", exc.strerror)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self, healthy: bool) -> None:
        """Call often; pings at half the watchdog period while `healthy`."""
        if self.watchdog_interval is None or not healthy:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self.send("WATCHDOG=1")
            self._next_ping = now + self.watchdog_interval
