"""The store's one face: `Store`, and the operations of a transaction (`Tx`), by table family.

Every caller (pipeline, delivery, app, cli) goes through these protocols; every SQL statement
lives in a backend module behind them (bridge/store/sqlite.py today; a second backend is one
module that passes tests/store/, the contract suite). So the protocol says *what* is stored,
never how: operations take plain values and return the shared vocabulary or the records of
bridge/store/records.py; no connection, cursor or backend error crosses it (a backend raises
bridge.errors.StoreError when it cannot do it now).

Transaction boundaries are explicit, because a shared database (PostgreSQL, several replicas)
needs them: what must commit together is written inside one `with store.transaction() as tx:`
block, and nothing slow (no HTTP call) runs inside one. `reading()` hands out only the reads
(`ReadTx`); each read sees committed data.

Over 400 lines as one idea: the whole contract of a backend, read in one place, each family's
reads (`...Reads`) apart from the operations that change them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from bridge.alerting.alertstate import TrackedAlert
from bridge.alerting.dedup import LogEntry
from bridge.alerting.matchers import Matcher
from bridge.alerting.silences import Silence
from bridge.model import Delivery, Event, FileKey, Position
from bridge.store.records import (
    Ack,
    AppRobotSend,
    Card,
    Escalation,
    Group,
    Readiness,
    Result,
    Row,
    Seen,
    Sent,
    StoredRow,
    Task,
)


class OutboxReads(Protocol):
    """Accepted messages until the channel takes them, and dead letters after."""

    def due(self, target: str, now: float, limit: int) -> list[Row]:
        """Pending rows of `target` whose time has come and whose claim (if any) ended by
        `now`, oldest first (created_at, then id)."""
        ...

    def next_due_at(self, target: str) -> float | None:
        """When `target`'s next pending row is due (None: nothing pending)."""
        ...

    def due_at(self, target: str, now: float) -> float | None:
        """next_due_at, found cheaply when a row is due by `now` already: then the not_before
        (at most `now`) of the oldest such row, which a sender's turn claims first."""
        ...

    def pending_count(self, target: str | None = None) -> int: ...

    def depth(self) -> dict[str, tuple[int, float | None]]:
        """Per target with pending rows: (how many, created_at of the oldest)."""
        ...

    def dead_count(self) -> int: ...

    def claimers(self, now: float) -> set[str]:
        """The owners holding outbox rows or notice tasks (Notices.claim) past `now`."""
        ...

    def claimed(self, now: float) -> dict[str, int]:
        """Per target: pending rows whose claim runs past `now` (being sent right now)."""
        ...

    def listing(
        self, status: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[Row]:
        """Rows (of `status`, of `target`), oldest first."""
        ...

    def find(self, part: str) -> list[Row]:
        """Rows whose id contains `part` literally (at most 2: unique or ambiguous)."""
        ...


class Outbox(OutboxReads, Protocol):
    """... and the operations that change them."""

    def enqueue(self, deliveries: Iterable[Delivery], now: float) -> int:
        """Queue `deliveries` as pending, due now; how many. When the transaction commits, the
        senders of their targets in every replica sharing the store are told (a shared
        database's backend NOTIFYs, see Store.listen)."""
        ...

    def claim(
        self, target: str, owner: str, now: float, until: float, limit: int
    ) -> list[StoredRow]:
        """Up to `limit` due pending rows of `target` (oldest first) that no one else holds:
        unclaimed, claimed by `owner` already, or claimed until `now` or before (the claimer
        died or stalled). They are `owner`'s until `until`, and another claim does not return
        them meanwhile. Atomic: of claims running at once (several replicas), no two return
        the same row, and none waits for another's rows (a shared database's backend locks
        what it picks and skips what others locked, e.g. FOR UPDATE SKIP LOCKED). Returned as
        stored: the caller decodes them (StoredRow.decode) after the transaction."""
        ...

    def renew(self, ids: Iterable[str], owner: str, until: float) -> list[str]:
        """`owner`'s claim of the pending rows `ids` runs until `until`: the ids it held, or no
        one did (the others were claimed by someone else since, or left the queue)."""
        ...

    def release(self, owner: str, ids: Iterable[str] | None = None) -> int:
        """`owner` lets go of rows `ids` (all its rows when None) without an outcome: anyone
        may claim them at once. How many it held."""
        ...

    def delivered(self, ids: Iterable[str]) -> None:
        """The rows leave the outbox (whoever holds them: DingTalk has the message)."""
        ...

    def progress(self, id_: str, parts_sent: int, now: float, *, owner: str | None = ...) -> None:
        """`parts_sent` parts of a long message went out (the rest are sent after a restart).
        With `owner`: unless another claimer took the row since (so for the outcomes below:
        a claimer that lost its rows changes nothing)."""
        ...

    def retry_later(
        self,
        ids: Iterable[str],
        not_before: float,
        reason: str,
        errcode: int | None,
        errmsg: str | None,
        now: float,
        *,
        was: str = ...,
        owner: str | None = ...,
    ) -> None:
        """Rows in status `was` (pending by default) pending again, due at `not_before`, with
        why and one more attempt counted; unclaimed. With `owner`: not the rows another
        claimer took since."""
        ...

    def dead_letter(
        self,
        ids: Iterable[str],
        reason: str,
        errcode: int | None,
        errmsg: str | None,
        now: float,
        *,
        owner: str | None = ...,
    ) -> None:
        """The rows are dead letters, with why; unclaimed. With `owner`: not those another
        claimer took since."""
        ...

    def revive(self, ids: Iterable[str], now: float) -> int:
        """Dead letters back to pending, due now, attempts reset; how many were dead. Every
        replica's sender of their targets is told (as by `enqueue`)."""
        ...

    def due_now(self, ids: Iterable[str], now: float) -> None:
        """Pending rows among `ids` are due at `now` (their backoff skipped); their senders
        are told."""
        ...

    def purge(self, ids: Iterable[str]) -> int:
        """Delete the rows whatever their status; how many."""
        ...


class AlertLogReads(Protocol):
    """The notification log: per rule and alert group, what was last told and when."""

    def get_entry(self, rule: str, key: str) -> LogEntry | None: ...

    def firing(self) -> list[tuple[str, str]]:
        """(rule, key) of every alert group firing now, oldest notification first."""
        ...

    def firing_alerts(self) -> frozenset[str]:
        """The fingerprints of every alert firing at its group's last notification (the
        console's silence preview: what fires now)."""
        ...


class AlertLog(AlertLogReads, Protocol):
    """... and the operations that change them."""

    def entry_for_update(self, rule: str, key: str) -> LogEntry | None:
        """The entry, (rule, key) locked until the transaction ends: of two transactions (two
        replicas) deciding about one alert group at once, the second waits and reads what the
        first committed, so a repeat interval holds across replicas."""
        ...

    def put_entry(
        self, rule: str, key: str, firing: Iterable[str], resolved: Iterable[str], now: float
    ) -> None:
        """Record what was told; with nothing firing the entry goes (the next firing is news)."""
        ...

    def prune_entries(self, older_than: float) -> int:
        """Forget entries (and acknowledgements) older than `older_than`; how many entries."""
        ...


class AcksReads(Protocol):
    """Alerts acknowledged from the chat, by fingerprint: no repeats until resolved."""

    def acknowledged_by(self, fingerprint: str) -> str | None: ...

    def listing(self, limit: int) -> list[Ack]:
        """The `limit` latest acknowledgements, newest first (who acknowledged what, when)."""
        ...


class Acks(AcksReads, Protocol):
    """... and the operations that change them."""

    def acknowledge(self, fingerprint: str, by: str, now: float) -> None: ...

    def forget(self, fingerprint: str) -> None: ...


class GroupsReads(Protocol):
    """Aggregation groups (rules with group_by) and the alerts they hold until flushed."""

    def due(self, now: float) -> list[Group]:
        """Groups whose flush time has come, the earliest first."""
        ...

    def next_flush_at(self) -> float | None: ...

    def flush_at(self, rule: str, key: str) -> float | None:
        """When the group (rule, key) flushes next; None when it holds nothing now."""
        ...

    def members(self, rule: str, key: str) -> list[Event]:
        """The held alerts, in the order they last changed."""
        ...


class Groups(GroupsReads, Protocol):
    """... and the operations that change them."""

    def claim(self, rule: str, key: str, now: float) -> bool:
        """The group is due at `now` and this transaction flushes it (the group locked until
        the end); False when another transaction (replica) flushed or ended it since."""
        ...

    def add(
        self,
        rule: str,
        key: str,
        labels: Mapping[str, str],
        members: Iterable[tuple[str, str, Event]],
        now: float,
        group_wait: float,
    ) -> None:
        """Hold `members` (fingerprint, status, single-alert event), replacing an alert held
        already; a new group's first flush is `group_wait` from now. Waits for a flush of the
        group in progress (so no member joins a group that flush ends)."""
        ...

    def after_flush(self, rule: str, key: str, now: float, group_interval: float) -> None:
        """Resolved alerts leave the group once told; an empty group ends; else the next
        flush is `group_interval` from now."""
        ...

    def drop(self, rule: str, key: str) -> None: ...


class SilencesReads(Protocol):
    """Silences added at runtime (CLI, chat), and their Alertmanager twins."""

    def load(self, ended_after: float | None = None) -> list[Silence]:
        """Silences ending after `ended_after` (all when None), by start; unreadable ones are
        skipped with a warning."""
        ...

    def linked(self, silence_id: str) -> str | None: ...

    def version(self) -> str:
        """Changes whenever a silence is added or expired, by any process on this state: a
        replica reloads its silences when it differs from the one it read them at."""
        ...


class Silences(SilencesReads, Protocol):
    """... and the operations that change them."""

    def add(
        self,
        parsed: tuple[Matcher, ...],
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
        now: float,
    ) -> Silence: ...

    def expire(self, id_prefix: str, now: float, by: str = "") -> list[str]:
        """The active silences whose id starts with `id_prefix`; the one ends now if unique,
        ended by `by` (who, as the silence's `expired_by`)."""
        ...

    def link(self, silence_id: str, am_id: str) -> None:
        """`silence_id` also exists in Alertmanager as `am_id`."""
        ...


class RateWindowsReads(Protocol):
    """The calls each robot (or app) counted, and its lockouts: shared by every target and
    every replica posting to it."""

    def load(self, robot: str, since: float) -> tuple[list[float], float]:
        """The robot's calls after `since` (oldest first) and its lockout end (0: none)."""
        ...


class RateWindows(RateWindowsReads, Protocol):
    """... and the operations that change them. A turn is one transaction: `window_for_update`
    (the robot locked), then `reserve` when the window has room; the outcome's transaction
    settles the reservation with `record_calls`."""

    def window_for_update(
        self, robot: str, since: float
    ) -> tuple[list[tuple[float, str | None]], float]:
        """The robot locked until the transaction ends (another replica's turn waits); its calls
        after `since`, oldest first, each with its reservation while in flight (None once
        counted), and its lockout end (0: none)."""
        ...

    def reserve(self, robot: str, reservation: str, at: float) -> None:
        """A call about to be made, counted at `at` until its outcome settles it."""
        ...

    def record_calls(
        self,
        robot: str,
        times: Iterable[float],
        forget_before: float,
        settles: str | None = None,
    ) -> None:
        """Remember calls, in place of the reservation `settles` (gone even when `times` is
        empty: the call never reached DingTalk's counter), and forget this robot's calls before
        `forget_before`."""
        ...

    def lock_out(self, robot: str, until: float) -> None:
        """Locked out until `until` (a later lockout already recorded wins)."""
        ...

    def adopt_legacy(
        self, target: str, robot: str, now: float, keep: float
    ) -> tuple[list[float], float]:
        """Move an older version's per-target rows of `target` to `robot`; what was moved
        (calls within `keep` seconds, lockout end). Nothing for a backend without them."""
        ...


class NoticesReads(Protocol):
    """Work notices between DingTalk's "accepted" and its "received by"."""

    def due(self, now: float, limit: int) -> list[Task]:
        """Tasks whose next poll has come, the most overdue first."""
        ...

    def next_poll_at(self) -> float | None: ...

    def waiting(self) -> dict[str, int]:
        """Per target: notices awaiting their result."""
        ...

    def results(self, id_: str) -> list[Result]:
        """What DingTalk said about message `id_`, oldest task first."""
        ...

    def find_results(self, part: str) -> list[str]:
        """Ids with results containing `part` literally (at most 2)."""
        ...

    def task_of(self, id_: str) -> Task | None:
        """The task a sent message awaits the result of."""
        ...


class Notices(NoticesReads, Protocol):
    """... and the operations that change them. A poller claims the tasks it polls, as a sender
    claims outbox rows (Outbox.claim): one replica polls a task at a time."""

    def claim(self, owner: str, now: float, until: float, limit: int) -> list[Task]:
        """Up to `limit` tasks due by `now` (the most overdue first) that no one else holds,
        now `owner`'s until `until` (atomic, as Outbox.claim)."""
        ...

    def release(self, owner: str, tasks: Iterable[Task] | None = None) -> None:
        """`owner` lets go of `tasks` (all its tasks when None) without polling them."""
        ...

    def awaiting(
        self, rows: Sequence[Row], target: str, task_id: int, now: float, first_poll: float
    ) -> None:
        """DingTalk took the notice carrying `rows` as `task_id`: the rows are 'sent', the
        task polled at `first_poll`."""
        ...

    def poll_later(
        self, task: Task, next_poll: float, answer: str | None, *, owner: str | None = ...
    ) -> None:
        """One more poll counted; `answer` (when given) kept as the last answer; unclaimed.
        With `owner`: unless another poller claimed the task since."""
        ...

    def settle(
        self,
        task: Task,
        outcome: str,
        received: Iterable[str],
        refused: Iterable[tuple[str, str]],
        note: str | None,
        now: float,
        *,
        owner: str | None = ...,
    ) -> bool:
        """Record the result of every message of `task` and stop polling it (results older
        than RESULTS_KEEP go); True, and the caller moves the outbox rows in the same
        transaction. False (nothing recorded) when `owner` is given and another poller claimed
        the task since."""
        ...


class AppRobotSendsReads(Protocol):
    """App-robot sends DingTalk took (store/appsends.py): kept after their outbox row."""

    def of(self, id_: str) -> list[AppRobotSend]:
        """The calls that carried message `id_`, in the order they were made."""
        ...

    def find(self, part: str) -> list[str]:
        """Ids of recorded sends containing `part` literally (at most 2)."""
        ...

    def singles(self, target: str, rule: str, since: float) -> list[AppRobotSend]:
        """`rule`'s messages sent alone (not in a digest) to `target` from `since` on, not
        recalled, oldest first."""
        ...


class AppRobotSends(AppRobotSendsReads, Protocol):
    def record(self, sends: Iterable[AppRobotSend], now: float) -> None:
        """Keep `sends`; forget those older than RESULTS_KEEP."""
        ...

    def recalled(self, keys: Iterable[str], now: float) -> None:
        """DingTalk recalled the calls of these processQueryKeys."""
        ...

    def recall_failed(self, notes: Iterable[tuple[str, str]]) -> None:
        """DingTalk did not recall these calls: (processQueryKey, why)."""
        ...


class CardsReads(Protocol):
    """Interactive cards DingTalk delivered (store/cards.py)."""

    def get(self, out_track_id: str) -> Card | None:
        """The card `out_track_id` (None: never ours, or forgotten)."""
        ...

    def live(self, fingerprint: str) -> list[Card]:
        """The cards of alert `fingerprint` not settled yet, oldest first."""
        ...


class Cards(CardsReads, Protocol):
    def record(self, cards: Iterable[Card], now: float) -> None:
        """Keep `cards`; forget those older than RESULTS_KEEP."""
        ...

    def settle(self, out_track_ids: Iterable[str], now: float) -> None:
        """These cards were told their alert resolved."""
        ...


class EscalationsReads(Protocol):
    """Escalations of alerts of rules with `escalate` (store/escalations.py)."""

    def running(self) -> list[Escalation]:
        """Every escalation not stopped, oldest first."""
        ...

    def ended(self) -> list[Escalation]:
        """Escalations their alert's resolution stopped, not yet counted."""
        ...


class Escalations(EscalationsReads, Protocol):
    def fired(
        self, rule: str, key: str, fingerprint: str, labels: Mapping[str, str], now: float
    ) -> bool:
        """Start the alert's escalation now unless one runs or was acked; whether it started."""
        ...

    def resolved(self, rule: str, key: str, now: float) -> None:
        """The alert resolved: a running escalation stops; an acked one is forgotten."""
        ...

    def advance(self, one: Escalation, step: int, now: float) -> bool:
        """Claim step `step` of `one`'s firing: True for the one caller that moves it on."""
        ...

    def stop(self, one: Escalation, why: str, now: float) -> bool:
        """Stop `one`'s firing (an ack): True for the one caller that stopped it."""
        ...

    def forget(self, one: Escalation) -> bool:
        """Forget `one`, resolved: True for the one caller that did."""
        ...

    def drop(self, rule: str) -> None:
        """Forget the escalations of `rule`, which no longer escalates."""
        ...


class TailStateReads(Protocol):
    """Where each file input of each node stopped in each file (by file identity). `node` is
    the replica's node id (`state: {node_id}`): replicas sharing a database tail their own
    files, never each other's (same input name, path or inode notwithstanding)."""

    def load(self, node: str, input_name: str) -> dict[FileKey, Position]: ...


class TailState(TailStateReads, Protocol):
    """... and the operations that change them."""

    def save(
        self, node: str, input_name: str, positions: Mapping[FileKey, Position], now: float
    ) -> None: ...

    def forget(self, node: str, input_name: str, keys: Iterable[FileKey]) -> None: ...

    def prune(self, node: str, input_name: str, keep: Iterable[FileKey], before: float) -> int:
        """Forget files not seen since `before` and not in `keep`; how many."""
        ...

    def first_run(self, node: str, input_name: str, now: float) -> bool:
        """True the first time an input runs on `node` (remembered from then on). Positions
        stored before node ids existed are adopted by the first node that asks (see
        store/tailstate.py), so that node resumes them and this is not its first run."""
        ...

    def record(
        self,
        node: str,
        input_name: str,
        positions: Mapping[FileKey, Position],
        gone: Iterable[FileKey],
        now: float,
    ) -> None:
        """Save the positions reached and forget the deleted files."""
        ...


class Keys(Protocol):
    """Keys the bridge made for itself (store/keys.py)."""

    def get_or_make(self, name: str, fresh: str) -> str:
        """The key `name`, stored as `fresh` if there is none yet (the first writer wins)."""
        ...


class ReplaysReads(Protocol):
    """Signed requests already taken, each until its timestamp leaves the input's window."""

    def count(self) -> int: ...

    def taken(self, input_name: str, key: str, now: float) -> bool:
        """Is (input, key) remembered (and not expired)? A read: it claims nothing."""
        ...


class Replays(ReplaysReads, Protocol):
    """... and the operations that change them."""

    def claim(self, input_name: str, key: str, digest: str, expires: float, now: float) -> Seen:
        """Remember (input, key) until `expires` unless remembered already (rows expired by
        `now` are forgotten first, of every input)."""
        ...


class DuplicatesReads(Protocol):
    """Alertmanager notifications taken, by input and digest, each until its window ends
    (bridge/pipeline/duplicates.py says what the digest covers)."""

    def count(self) -> int:
        """Notifications remembered (expired ones may linger until the next claim)."""
        ...


class Duplicates(DuplicatesReads, Protocol):
    """... and the operation that changes them."""

    def claim(self, input_name: str, digest: str, expires: float, now: float) -> bool:
        """True when (input, digest) was not remembered (or only until `now` or before): it is
        now, until `expires`. False when it is remembered still: a duplicate, and the memory is
        left as it was (a copy does not extend the window). Atomic: of two transactions
        claiming the same pair at once, at most one gets True (a shared database's backend
        inserts-if-absent, e.g. INSERT ... ON CONFLICT DO NOTHING, never reads then writes).
        Rows expired by `now` are forgotten, of every input."""
        ...


class AlertStateReads(Protocol):
    """Alerts posted to `prometheus` inputs, one per (input, label fingerprint), as
    Alertmanager keeps them (bridge/alerting/alertstate.py says what a post does to one)."""

    def get(self, input_name: str, fingerprint: str) -> TrackedAlert | None: ...

    def next_expiry(self, inputs: Sequence[str]) -> float | None:
        """The earliest `ends_at` of a firing alert of `inputs` (None: none fires)."""
        ...

    def listing(self, input_name: str) -> list[TrackedAlert]:
        """Every alert kept for the input, the earliest started first."""
        ...


class AlertState(AlertStateReads, Protocol):
    """... and the operations that change them."""

    def get_for_update(self, input_name: str, fingerprint: str) -> TrackedAlert | None:
        """The alert, (input, fingerprint) locked until the transaction ends: of two
        transactions taking a post of one alert at once, the second waits and reads what the
        first committed."""
        ...

    def put(self, alert: TrackedAlert) -> None:
        """Keep `alert` in place of what was kept under its (input, fingerprint)."""
        ...

    def claim_expired(self, input_name: str, now: float, limit: int) -> list[TrackedAlert]:
        """Up to `limit` firing alerts of the input whose `ends_at` is `now` or before, now
        kept as resolved; returned so (resolved), the earliest end first. Atomic: of claims
        running at once (replicas), no two return the same alert, and none waits for another's
        (a shared database's backend locks what it picks and skips what others locked)."""
        ...

    def prune(self, resolved_before: float, untouched_before: float) -> int:
        """Forget resolved alerts not updated since `resolved_before`, and any alert not
        updated since `untouched_before` (its input gone, say); how many."""
        ...


class HistoryReads(Protocol):
    """What was sent, one record per attempt (store/history.py): the bodies posted and
    DingTalk's answer, kept after the outbox row is gone."""

    def recent(
        self,
        *,
        text: str = "",
        target: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        before: float | None = None,
    ) -> list[Sent]:
        """Newest first, at most `limit` (and 500). `text` matches (case-insensitive, literal)
        the id, title, target, rule, errmsg or a body; `before` pages back (at < before)."""
        ...

    def attempts(self, id_: str) -> list[Sent]:
        """Every recorded attempt of message `id_` (or of a digest covering it), oldest
        first."""
        ...


class History(HistoryReads, Protocol):
    def record(self, sent: Sent) -> None:
        """Keep one attempt (a body beyond 64 KiB is cut, with a marker)."""
        ...

    def prune(self, older_than: float, keep_at_most: int) -> int:
        """Forget attempts that ended before `older_than`, and the oldest beyond the newest
        `keep_at_most`; how many went."""
        ...


class ReadTx(Protocol):
    """What a read sees, by table family. Valid only inside its `with` block."""

    @property
    def outbox(self) -> OutboxReads: ...
    @property
    def alertlog(self) -> AlertLogReads: ...
    @property
    def acks(self) -> AcksReads: ...
    @property
    def groups(self) -> GroupsReads: ...
    @property
    def silences(self) -> SilencesReads: ...
    @property
    def ratewindows(self) -> RateWindowsReads: ...
    @property
    def notices(self) -> NoticesReads: ...
    @property
    def appsends(self) -> AppRobotSendsReads: ...
    @property
    def cards(self) -> CardsReads: ...
    @property
    def escalations(self) -> EscalationsReads: ...
    @property
    def history(self) -> HistoryReads: ...
    @property
    def tailstate(self) -> TailStateReads: ...
    @property
    def replays(self) -> ReplaysReads: ...
    @property
    def duplicates(self) -> DuplicatesReads: ...
    @property
    def alertstate(self) -> AlertStateReads: ...


class Tx(ReadTx, Protocol):
    """One transaction's operations, by table family. Valid only inside its `with` block."""

    @property
    def outbox(self) -> Outbox: ...
    @property
    def alertlog(self) -> AlertLog: ...
    @property
    def acks(self) -> Acks: ...
    @property
    def groups(self) -> Groups: ...
    @property
    def silences(self) -> Silences: ...
    @property
    def ratewindows(self) -> RateWindows: ...
    @property
    def notices(self) -> Notices: ...
    @property
    def appsends(self) -> AppRobotSends: ...
    @property
    def cards(self) -> Cards: ...
    @property
    def escalations(self) -> Escalations: ...
    @property
    def history(self) -> History: ...
    @property
    def tailstate(self) -> TailState: ...
    @property
    def replays(self) -> Replays: ...
    @property
    def duplicates(self) -> Duplicates: ...
    @property
    def alertstate(self) -> AlertState: ...
    @property
    def keys(self) -> Keys: ...


class Store(Protocol):
    """The state store: long-lived, shared by every thread of the process."""

    @property
    def local(self) -> bool:
        """Do its transactions wait on nothing across a network (SQLite: a file here)? Then a
        request that only commits to it may be served on the HTTP server's loop thread."""
        ...

    def transaction(self, share_commit: bool = False) -> AbstractContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises.
        Raises bridge.errors.StoreError when the store cannot commit now. `share_commit`: the
        commit may wait a moment for other threads' transactions and be one with theirs (group
        commit); the block still ends only once its writes are committed. Only for a caller
        that holds no other lock inside the block."""
        ...

    def reading(self) -> AbstractContextManager[ReadTx]:
        """Reads only, each seeing committed data (a shared database may serve them from a
        replica)."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """The calling thread's transactions inside the block commit together at its end
        (SQLite; store/db.py Database.batch), or each by itself (PostgreSQL). Raises
        StoreError when that commit fails: nothing of the block was committed then."""
        ...

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run `effect` once what this thread wrote is committed: at once, or at the end of the
        batch it is in; never when that batch's commit fails (its requests are served again)."""
        ...

    def listen(self, queued: Callable[[str | None], None]) -> None:
        """From now until `close`, call `queued(target)` (from a thread of the store's) when
        another process queued rows for `target`, and `queued(None)` when it may have missed
        some (listening was broken meanwhile). Only a process that sends calls it."""
        ...

    def wake_senders(self) -> None:
        """This process committed rows it does not send itself (an HTTP worker when
        `server.background_worker` sends): wake the senders of the process that does. A shared
        database needs nothing here: its enqueues NOTIFY in their transactions."""
        ...

    def writable(self) -> bool:
        """Can it commit right now? (it tries a small write)"""
        ...

    def probe(self, now: float) -> Readiness:
        """The store's part of the readiness answer."""
        ...

    @property
    def wakeups(self) -> str:
        """How this process's senders hear of rows the other processes queue (Readiness's
        `wakeups`), without asking the database."""
        ...

    @property
    def failing(self) -> bool:
        """A commit failed for lack of room (or I/O) and the store has not recovered yet."""
        ...

    def start_upkeep(self) -> None:
        """Start the background upkeep (the daemon's store; the CLI's needs none)."""
        ...

    def close(self) -> None:
        """Stop the upkeep and let go of the database (twice is harmless)."""
        ...
