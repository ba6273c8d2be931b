"""Recalling sent app-robot messages: for `outbox recall` and for a storm's singles once its
digest is sent (a rule's `recall_singles_after_digest`).

DingTalk recalls a robot's message by the `processQueryKey` its send answered with
(dingtalk-stream.md §11), within 24 hours, and only with the robot code (and group) it was sent
with; the bridge keeps those per message (store/appsends.py). A custom robot's webhook message
has no recall at all, so only app-robot sends can be recalled. Every message gets one answer:
recalled, or why not, in words an operator can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.config.model import AppRobotTarget, Config, Target
from bridge.dingtalk.approbot import CARD_KEY, recall
from bridge.dingtalk.client import DingTalkClient
from bridge.errors import DeliveryError
from bridge.logs import fmt_fields
from bridge.store import records
from bridge.store.api import Store
from bridge.store.records import AppRobotSend, Row

log = logging.getLogger("bridge.delivery")

RECALL_WINDOW = 86_400.0  # DingTalk recalls a robot message only within 24 hours of sending


@dataclass(frozen=True)
class RecallResult:
    """What became of one message: `recalled`, or why not (`why`)."""

    id: str
    recalled: bool
    why: str = ""


def not_recallable(store: Store, id_: str, targets: Mapping[str, Target]) -> str:
    """Why message `id_`, of which no app-robot send is recorded, cannot be recalled."""
    with store.reading() as tx:
        row = next((r for r in tx.outbox.find(id_) if r.id == id_), None)
    if row is None:
        return (
            "no app-robot send is recorded for it: custom robot (webhook) messages cannot be"
            " recalled (DingTalk has no recall for them), nor work notices; app-robot sends"
            " are remembered for 7 days"
        )
    if isinstance(targets.get(row.target), AppRobotTarget) or row.status == records.PENDING:
        if row.status == records.DEAD:
            return "never delivered (a dead letter): nothing to recall"
        return "not sent yet (pending): nothing to recall; `outbox purge` drops it"
    return f"target {row.target} is not an app_robot: DingTalk has no recall for it"


def recall_ids(
    store: Store,
    client: DingTalkClient,
    targets: Mapping[str, Target],
    ids: Sequence[str],
    now: float,
) -> list[RecallResult]:
    """Recall the messages `ids` (full ids) and record what DingTalk said; one result each."""
    results: dict[str, RecallResult] = {}
    due: dict[tuple[str, str | None], list[AppRobotSend]] = {}  # (target, group): sends
    for id_ in ids:
        with store.reading() as tx:
            sends = tx.appsends.of(id_)
        live = [s for s in sends if s.recalled_at is None]
        if sends and all(s.process_query_key.startswith(CARD_KEY) for s in sends):
            results[id_] = RecallResult(
                id_, False, "an interactive card: DingTalk's robot recall does not take cards back"
            )
        elif not sends:
            results[id_] = RecallResult(id_, False, not_recallable(store, id_, targets))
        elif not live:
            results[id_] = RecallResult(id_, True, "already recalled")
        elif now - min(s.sent_at for s in live) > RECALL_WINDOW:
            results[id_] = RecallResult(
                id_, False, "sent more than 24 hours ago: DingTalk recalls only within 24 hours"
            )
        elif not isinstance(targets.get(live[0].target), AppRobotTarget):
            results[id_] = RecallResult(
                id_,
                False,
                f"target {live[0].target} is no longer an app_robot in the config (its app's"
                " credentials are needed to recall)",
            )
        else:
            for send in live:
                due.setdefault((send.target, send.conversation), []).append(send)
    failed_keys: dict[str, str] = {}
    for (target_name, conversation), sends in due.items():
        target = targets[target_name]
        assert isinstance(target, AppRobotTarget)
        keys = list(dict.fromkeys(s.process_query_key for s in sends))
        try:
            done, failed = recall(client, target, conversation, keys)
        except DeliveryError as exc:
            failed = {k: f"the recall call failed: {exc}" for k in keys}
            done = []
        with store.transaction() as tx:
            tx.appsends.recalled(done, now)
            tx.appsends.recall_failed(failed.items())
        failed_keys.update(failed)
    for sends in due.values():
        for send in sends:
            why = failed_keys.get(send.process_query_key)
            previous = results.get(send.id)
            if why is not None:
                results[send.id] = RecallResult(send.id, False, why)
            elif previous is None:
                results[send.id] = RecallResult(send.id, True)
    for result in results.values():
        log.info(
            fmt_fields(
                "recalled" if result.recalled else "not recalled",
                id=result.id,
                why=result.why or None,
            )
        )
    return [results[i] for i in ids if i in results]


def recall_storm_singles(
    store: Store,
    client: DingTalkClient,
    config: Config,
    target: str,
    digest: Sequence[Row],
    now: float,
) -> list[RecallResult]:
    """A digest carrying `digest` reached app_robot `target`: for each of its rules with
    `recall_singles_after_digest`, recall the rule's singles sent to `target` from that long
    before the digest's oldest alert of the rule on."""
    carried = {r.id for r in digest}
    ids: list[str] = []
    for rule_name in sorted({r.rule for r in digest}):
        rule = config.rules_by_name.get(rule_name)
        if rule is None or rule.recall_singles_after_digest is None:
            continue
        oldest = min(r.created_at for r in digest if r.rule == rule_name)
        since = oldest - rule.recall_singles_after_digest
        with store.reading() as tx:
            singles = tx.appsends.singles(target, rule_name, since)
        ids += [s.id for s in singles if s.id not in carried and s.id not in ids]
    if not ids:
        return []
    log.info(
        fmt_fields("recalling a storm's singles after its digest", target=target, count=len(ids))
    )
    return recall_ids(store, client, config.targets, ids, now)
