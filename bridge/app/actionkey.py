"""The key that signs the one-tap action links (bridge/alerting/actions.py).

`actions.secret` (or `secret_file`) when the config gives one. Otherwise a random 256-bit key
the bridge makes once and keeps in its state store (store/keys.py): the simplest choice that is
sound for every deployment. Every replica sharing the store reads the same key, so a link made
by one is honoured by another; a restart keeps it, so links already in the chat stay valid; and
nobody has to create, distribute or rotate a file. It is read once per process and cached: it
never changes once made (deleting it from the store, or setting `secret`, voids every link sent).
"""

from __future__ import annotations

import secrets
import threading

from bridge.config.model import ActionsConfig
from bridge.store.api import Store

KEY_NAME = "actions"


class ActionKey:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._stored: bytes | None = None
        self._lock = threading.Lock()

    def get(self, actions: ActionsConfig) -> bytes:
        """The signing key (raises StoreError when the store cannot give it now)."""
        if actions.secret:
            return actions.secret.encode()
        with self._lock:
            if self._stored is None:
                with self._store.transaction() as tx:
                    stored = tx.keys.get_or_make(KEY_NAME, secrets.token_hex(32))
                self._stored = stored.encode()
            return self._stored
