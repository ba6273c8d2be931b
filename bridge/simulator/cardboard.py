"""Interactive cards as the simulated DingTalk shows them, and clicks on their buttons
(Stream reference §10): `GET /_sim/cards` lists every card call and, under `instances`, each
card with its variables now (createAndDeliver's, changed by each PUT and by each click's
answer); `POST /_sim/cards/click {"outTrackId", "userId", "action"}` pushes a CALLBACK frame on
`/v1.0/card/instances/callback` to the card's app over the Stream gateway, as DingTalk does when
someone taps a button, and applies the `response.cardData.cardParamMap` of its ack to the card
when the ack arrives. `"message_id"` reuses a frame id (DingTalk delivering a click again).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

CARD_TOPIC = "/v1.0/card/instances/callback"
CORP_ID = "dingsimulatedcorp"
JSON = dict[str, Any]


def instances(calls: Sequence[JSON]) -> list[JSON]:
    """Each card created, with its variables after every later change (in the order made)."""
    cards: dict[str, JSON] = {}
    for call in calls:
        body = call.get("body") or {}
        track = str(body.get("outTrackId"))
        data = body.get("cardData")
        params = data.get("cardParamMap") if isinstance(data, dict) else None
        params = params if isinstance(params, dict) else {}
        if call.get("op") == "created":
            cards[track] = {
                "outTrackId": track,
                "app_key": call.get("app_key"),
                "openSpaceId": body.get("openSpaceId"),
                "cardTemplateId": body.get("cardTemplateId"),
                "cardParamMap": dict(params),
                "changes": [],
            }
        elif track in cards:
            cards[track]["cardParamMap"].update(params)
            cards[track]["changes"].append({"op": call.get("op"), "cardParamMap": params})
    return list(cards.values())


def click_data(card: JSON, user_id: str, action: str) -> JSON:
    """The `data` of the CALLBACK frame of `user_id` tapping the button `action` on `card`."""
    space = str(card.get("openSpaceId") or "")
    space_type, _, space_id = space.removeprefix("dtv1.card//").partition(".")
    content = {"cardPrivateData": {"actionIds": [action], "params": {}}}
    return {
        "outTrackId": card["outTrackId"],
        "userId": user_id,
        "corpId": CORP_ID,
        "spaceType": space_type,
        "spaceId": space_id,
        "content": json.dumps(content, ensure_ascii=False),
    }


def answered_params(ack_data: Any) -> dict[str, str] | None:
    """The cardParamMap a click's ack carries (`data` as a JSON string), or None."""
    try:
        data = json.loads(ack_data) if isinstance(ack_data, str) else ack_data
        params = data["response"]["cardData"]["cardParamMap"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(params, dict):
        return None
    return {str(k): str(v) for k, v in params.items()}


class Clicks:
    """Clicks pushed and not answered yet: by frame messageId, the card they were on."""

    def __init__(self, apply: Callable[[str, dict[str, str], float], None]) -> None:
        self._apply = apply  # (outTrackId, variables, now): the card changes
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()

    def pushed(self, message_id: str, out_track_id: str) -> None:
        with self._lock:
            self._pending[message_id] = out_track_id

    def acked(self, message_id: str, code: int, data: Any, now: float) -> None:
        """An ack came in on the gateway: a click's answer changes its card."""
        with self._lock:
            track = self._pending.get(message_id) if code == 200 else None
        params = answered_params(data) if track is not None else None
        if track is not None and params:
            self._apply(track, params, now)
