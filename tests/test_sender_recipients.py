"""A work notice whose recipients resolve to nobody DingTalk can reach (a label naming nobody in
`people:`) has nothing to be sent in: the sender dead-letters it with the reason
`no_recipients`, posts nothing, records the attempt in the history, and does not count it as
an internal error (no bug of ours: /-/ready does not warn of it)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from bridge.app.rendering import QueuedRenderer
from bridge.clock import FakeClock
from bridge.config.model import Config
from bridge.delivery.sender import TargetSender
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.store import records
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml
from tests.test_sender import START, drive, enqueue
from tests.test_sender_history import FakeSession, history

CONFIG = """
timezone: UTC
people:
  alice: {userid: alice-id}
targets:
  owners: {type: work_notice, app_key: dingapp, app_secret: s3cret-of-the-app, agent_id: 7,
           recipients: ["{{ 'alice' if labels.alertname == 'ForAlice' else 'mallory' }}"]}
inputs:
  am: {type: alertmanager, path: /am}
rules:
  - {name: r, targets: [owners]}
"""


def test_a_notice_for_nobody_is_a_dead_letter_of_its_own_reason_not_an_internal_error(
    tmp_path: Path,
) -> None:
    config = cast(Config, compile_yaml(tmp_path, CONFIG))
    store = SqliteStore(tmp_path / "state")
    try:
        clock, session = FakeClock(START), FakeSession()
        target = config.targets["owners"]
        renderer = QueuedRenderer(
            lambda: config.rules_by_name,
            recipients=lambda name: getattr(config.targets[name], "recipients", ()),
        )
        client = DingTalkClient(session, clock)  # type: ignore[arg-type]
        sender = TargetSender(channel_for(target, client), store, renderer, clock=clock)
        enqueue(store, "owners", ["ForAlice"], START)
        enqueue(store, "owners", ["ForNobody"], START + 1)  # its owner is mallory: nobody known
        drive([sender], clock, 5)
        with store.reading() as tx:
            (dead,) = tx.outbox.listing(records.DEAD, "owners", 10)
        assert dead.id.endswith("ForNobody") and dead.reason == "no_recipients"
        assert "name nobody with a userid" in (dead.errmsg or "")
        assert sender.stats.internal_errors == 0 and sender.last_internal_error is None
        # Alice's went; nobody's posted nothing and is in the history with its reason.
        assert len(session.bodies) == 1 and '"userid_list":"alice-id"' in session.bodies[0]
        outcomes = {(s.id.split("-")[-1], s.outcome, s.reason) for s in history(store)}
        assert outcomes == {("ForAlice", "accepted", None), ("ForNobody", "dead", "no_recipients")}
    finally:
        store.close()
