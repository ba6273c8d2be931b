"""Who sends a row: the replica id, and the lease a sender or poller holds its rows by.

Several replicas (or processes) share one outbox; each claims the rows it sends
(store: Outbox.claim) for `lease` seconds, and renews the claim while a message is in flight
(between the parts of a long message, while it waits for the robot's turn), so a live replica
never loses a row it is sending. A replica that dies stops renewing: its rows are claimable
again once the lease ends, and another replica sends them (at most once more: the dead one may
have sent one just before it died, as a single process restarted after `kill -9` does).

The owner is one id per process, random, made at start (shown in /-/ready and the start log):
a restarted process is another owner, so nothing it held before is taken for its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from bridge.clock import Clock
from bridge.config.model import DEFAULT_CLAIM_LEASE
from bridge.delivery.labels import ids_of
from bridge.errors import StoreError
from bridge.logs import fmt_fields
from bridge.store.api import OutboxReads, Store
from bridge.store.records import Row

log = logging.getLogger("bridge.delivery")

Picked = TypeVar("Picked")  # a claim's stored rows, or the decoded rows a read finds due

DEFAULT_LEASE = DEFAULT_CLAIM_LEASE  # seconds (the config's `state: {lease}`)
RENEW_AT = 0.5  # renew once this share of the lease has passed


def new_replica_id() -> str:
    """host:pid:random, readable in logs, and never the id of an earlier process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_predecessor(owner: str, me: str, alive: Callable[[int], bool] = pid_alive) -> bool:
    """Is `owner` an earlier process of this host that is gone (killed, crashed)? Same host
    name, and its pid is ours now (a restarted container: pid 1 again) or runs no more. Its
    rows need not wait for its lease: a restart on one node resumes them at once, as before
    claims existed. Another live process of the host (its pid runs) keeps its rows."""
    host, _, rest = owner.partition(":")
    my_host, _, my_rest = me.partition(":")
    pid_text = rest.partition(":")[0]
    if owner == me or host != my_host or not pid_text.isdigit():
        return False
    return pid_text == my_rest.partition(":")[0] or not alive(int(pid_text))


def free_predecessors(store: Store, me: str, now: float) -> list[str]:
    """Release what earlier, dead processes of this host still hold (is_predecessor): which
    owners those were."""
    released: dict[str, int] = {}
    try:
        with store.transaction() as tx:
            gone = sorted(o for o in tx.outbox.claimers(now) if is_predecessor(o, me))
            for owner in gone:
                released[owner] = tx.outbox.release(owner)
                tx.notices.release(owner)
    except StoreError as exc:  # a full disk, the database away: their leases end by themselves
        log.warning(
            fmt_fields(
                "claims of a previous process not released",
                error=str(exc),
                why="the store cannot commit now; they are sent once their lease ends",
            )
        )
        return []
    for owner, rows in released.items():
        log.info(fmt_fields("claims of a previous process released", owner=owner, rows=rows))
    return list(released)


@dataclass
class Hold:
    """What one claimer holds now: the ids and until when (its own clock's view)."""

    ids: list[str]
    until: float
    lease: float

    def renew_due(self, now: float) -> bool:
        """Half the lease (RENEW_AT) is gone: renew before going on."""
        return now >= self.until - self.lease * (1 - RENEW_AT)

    def seconds_to_renewal(self, now: float) -> float:
        return max(0.0, self.until - self.lease * (1 - RENEW_AT) - now)


@dataclass(frozen=True)
class Taken:
    """What a sender's turn took: the rows, the target's backlog (0 when not counted), and
    when none was taken, when the next is due (None: nothing pending)."""

    rows: list[Row]
    backlog: int
    next_due: float | None


class Claims:
    """One sender's claims on its target's rows: taking, renewing and letting go of them."""

    def __init__(self, store: Store, target: str, owner: str, lease: float, clock: Clock) -> None:
        self.store = store
        self.target = target
        self.owner = owner
        self.lease = lease
        self.clock = clock

    def take(self, now: float, count_backlog: bool, limit: Callable[[int], int]) -> Taken:
        """Claim the due rows this turn may send, `limit(backlog)` at most.

        When no claim can be written (SQLite on a full disk: reads work, writes do not), the
        due rows no one holds are read instead and sent unclaimed, as before claims existed: the
        outcome is held until the store commits again (recording.py), and applies then, since
        no other claimer took the rows."""
        # A read first: with nothing due there is nothing to claim, and an idle sender must not
        # write every second (on SQLite a write waits behind any other writer, up to the busy
        # timeout, holding up every other user of the store meanwhile).
        # The backlog is counted there too, not in the claim's write transaction: on SQLite a
        # write holds every writer of every process, and counting a long queue takes a while
        # (a count a moment old is as good for choosing a digest).
        with self.store.reading() as read:
            next_due = read.outbox.due_at(self.target, now)
            if next_due is None or next_due > now:
                return Taken([], 0, next_due)
            counted = read.outbox.pending_count(self.target) if count_backlog else 0
        try:
            with self.store.transaction() as tx:
                outbox = tx.outbox
                stored, due = self._pick(
                    outbox,
                    lambda n: outbox.claim(self.target, self.owner, now, now + self.lease, n),
                    limit(counted),
                )
        except StoreError:
            with self.store.reading() as read:
                reads = read.outbox
                rows, due = self._pick(
                    reads, lambda n: reads.due(self.target, now, n), limit(counted)
                )
            return Taken(rows, counted, due)
        # Decoded after the claim committed, outside the write lock (records.StoredRow). A row
        # that cannot be decoded raises UnreadableRow; the others stay this owner's, claimed
        # again at its next turn.
        return Taken([row.decode() for row in stored], counted, due)

    def _pick(
        self, outbox: OutboxReads, take: Callable[[int], list[Picked]], limit: int
    ) -> tuple[list[Picked], float | None]:
        """The rows taken (`limit` at most), and when none was, when the next is due."""
        rows = take(limit)
        return rows, None if rows else outbox.next_due_at(self.target)

    def renew(self, hold: Hold) -> Literal["held", "wait", "lost"]:
        """Hold the rows for another lease: "held" (go on sending); "wait" (the store could
        not renew it and the lease is over: try again before sending on); "lost" (another
        replica took some since, as this one stalled past the lease: the message is theirs,
        and what is still held here is let go)."""
        now = self.clock.time()
        try:
            with self.store.transaction() as tx:
                held = tx.outbox.renew(hold.ids, self.owner, now + self.lease)
        except StoreError as exc:
            if now < hold.until:
                return "held"  # the lease runs still; the next turn tries again
            log.warning(fmt_fields("claim not renewed", target=self.target, error=str(exc)))
            return "wait"
        if len(held) == len(hold.ids):
            hold.until = now + self.lease
            return "held"
        self.let_go(held)
        log.warning(
            fmt_fields(
                "claim lost, message left to the replica that took it",
                target=self.target,
                id=ids_of([i for i in hold.ids if i not in held]),
                owner=self.owner,
            )
        )
        return "lost"

    def let_go(self, ids: list[str]) -> None:
        """Release rows held but not sent now: claimable at once (else when the lease ends)."""
        if not ids:
            return
        try:
            with self.store.transaction() as tx:
                tx.outbox.release(self.owner, ids)
        except StoreError:
            pass  # their lease ends by itself
