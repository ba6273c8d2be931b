"""A tap on a button of one of our interactive cards, as DingTalk's Stream connection delivers
it (reference/dingtalk-stream.md §10; the cards themselves: bridge/dingtalk/cards.py).

The frame's `data` has `outTrackId` (the card: our outbox id), `userId` (who tapped) and
`content`, a JSON *string* holding `{"cardPrivateData": {"actionIds": [...], "params": {...}}}`.
It is outside input like any request body: bounded, and parsed with the one guarded JSON parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import bad_request
from bridge.inputs import jsonbody

# outTrackId is ours (32-character outbox ids); DingTalk's pages state no limit [uncertain].
# Refusing longer keeps a hostile click from carrying a large key into a lookup.
MAX_ID = 128
MAX_ACTION_ID = 64
MAX_CONTENT = 16_384


@dataclass(frozen=True)
class CardClick:
    """A button tapped on one of our cards: which card, who, and which action id."""

    out_track_id: str
    user_id: str
    action: str


def _string(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"a card callback needs a non-empty string {key}")
    if len(value) > limit:
        raise bad_request(f"a card callback's {key} is longer than {limit} characters")
    return value


def parse_click(data: Any) -> CardClick:
    """The click in a card callback's decoded `data` (§10: `outTrackId`, `userId`, and `content`,
    a JSON string holding `cardPrivateData.actionIds`). InputError 400 on anything else."""
    if not isinstance(data, dict):
        raise bad_request("a card callback's data must be a JSON object")
    out_track_id = _string(data, "outTrackId", MAX_ID)
    user_id = _string(data, "userId", MAX_ID)
    content = data.get("content")
    if not isinstance(content, str) or len(content) > MAX_CONTENT:
        raise bad_request(
            f"a card callback's content must be a JSON string of at most {MAX_CONTENT} characters"
        )
    decoded = jsonbody.loads(content, "a card callback's content")
    private = decoded.get("cardPrivateData") if isinstance(decoded, dict) else None
    actions = private.get("actionIds") if isinstance(private, dict) else None
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], str):
        raise bad_request("a card callback names no action (cardPrivateData.actionIds)")
    action = actions[0]
    if not action or len(action) > MAX_ACTION_ID:
        raise bad_request(f"a card action id must be 1 to {MAX_ACTION_ID} characters")
    return CardClick(out_track_id, user_id, action)
