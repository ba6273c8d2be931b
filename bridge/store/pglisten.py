"""Wake-ups across replicas on PostgreSQL: one LISTEN connection per process, outside the pool.

An enqueue NOTIFYs WAKE_CHANNEL with the target's name in its own transaction (store/sqlconn.py's
Dialect), so the notification arrives when the rows are committed, at every replica listening.
`Listener` holds one autocommit connection that LISTENs, hands each target named to `queued`,
and pings the server now and then (a connection whose server vanished without a word is found
out). When the connection breaks (the database restarts), it reconnects with a growing delay,
and after each (re)connection calls `queued(None)`: notifications sent meanwhile are lost, so
every sender looks once. Until then the senders' idle poll (about a second) finds new rows:
listening only makes them prompt, it is never what delivery depends on.

It is not a pool connection: LISTEN belongs to a session, which a pool would hand to others,
and a listener waits for minutes, which would hold one of the few connections the requests need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bridge.store.sql import store_error
from bridge.store.sqlconn import WAKE_CHANNEL

log = logging.getLogger("bridge.store")

WAIT = 1.0  # seconds a wait for notifications lasts: how soon a stop is seen
PING_EVERY = 15.0  # seconds between pings of a quiet connection
RECONNECT_INITIAL = 0.5  # seconds before the first reconnection, doubling ...
RECONNECT_MAX = 15.0  # ... up to this
# TCP keepalives: a server host gone without closing the socket is noticed within ~30 s even
# while a ping waits.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class Listener:
    """LISTENs on WAKE_CHANNEL for the database at `url` in a thread, until `stop`."""

    def __init__(
        self,
        url: str,
        queued: Callable[[str | None], None],
        where: str,
        secrets: tuple[str, ...],
        connect_timeout: int,
    ) -> None:
        self._url = url
        self._queued = queued
        self._where = where  # the URL without its password, for the log
        self._secrets = secrets
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self.listening = False  # the connection is up and LISTENing
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WAIT + self._connect_timeout + 1.0)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=self._connect_timeout,
                    **KEEPALIVES,  # type: ignore[arg-type]
                ) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    if failures:
                        log.warning(f"listening for queued rows again database={self._where}")
                    failures = 0
                    self.listening = True
                    self._queued(None)  # what was queued while not listening
                    self._listen(conn)
            except psycopg.Error as exc:
                if not failures:  # once per outage
                    log.warning(
                        f"not listening for queued rows database={self._where}"
                        f' error="{store_error(exc, self._secrets)}" (senders poll meanwhile)'
                    )
                failures += 1
            except Exception:  # a bug of ours: the senders still poll; try again later
                log.exception("listener error")
                failures += 1
            self.listening = False
            if failures:
                delay = min(RECONNECT_INITIAL * 2 ** (failures - 1), RECONNECT_MAX)
                self._stop.wait(delay)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        """Wake senders for each notification until stopped or the connection fails."""
        pinged = time.monotonic()
        while not self._stop.is_set():
            for notice in conn.notifies(timeout=WAIT):
                self._queued(notice.payload)
            if time.monotonic() - pinged >= PING_EVERY:
                conn.execute("SELECT 1")
                pinged = time.monotonic()
