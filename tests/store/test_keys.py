"""Keys the bridge makes for itself (store/keys.py): made once, then the same for every process
that shares the state and after every restart; and what app/actionkey.py makes of them."""

from __future__ import annotations

from collections.abc import Callable

from bridge.app.actionkey import ActionKey
from bridge.config.model import ActionsConfig
from bridge.store.api import Store


def test_the_first_key_made_is_the_one_every_replica_reads(
    store: Store, reopen: Callable[[], Store]
) -> None:
    with store.transaction() as tx:
        first = tx.keys.get_or_make("actions", "made-first")
    other = reopen()
    with other.transaction() as tx:
        assert tx.keys.get_or_make("actions", "made-second") == first == "made-first"
        assert tx.keys.get_or_make("other", "x") == "x"  # keys are by name


def test_the_action_key_is_generated_once_and_survives_a_restart(
    store: Store, reopen: Callable[[], Store]
) -> None:
    generated = ActionKey(store).get(ActionsConfig())
    assert len(generated) == 64  # 256 random bits, in hex
    assert ActionKey(reopen()).get(ActionsConfig()) == generated
    configured = ActionsConfig(secret="a-configured-secret")
    assert ActionKey(store).get(configured) == b"a-configured-secret"  # the config wins
