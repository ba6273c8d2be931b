"""Interactive cards (reference/dingtalk-stream.md §10): the bodies that put an alert on a card,
update it, and what a button click on it says. Pure: no clock, no network.

Why cards at all: an action-card button can only open a URL, so on a custom robot the one-tap
actions are signed links (alerting/actions). A card sent by the app's robot can instead carry
buttons whose clicks DingTalk sends back over the app's Stream connection, with the clicking
user's id: no link to keep secret, and the chat commands' allow list applies to the person.

The card itself is drawn in DingTalk's card builder (卡片搭建平台), which gives the template id.
The bridge fills these string variables, which the template binds:

    title     the message title          markdown  the message body (markdown)
    status    firing / acked by … / resolved (localized)
    alert     the alert's short id (what `ack <id>` takes)

and expects the template's buttons to send one of the action ids `ack` or `silence_<duration>`
(`silence_1h`), as `cardPrivateData.actionIds` in the click. Every value in `cardParamMap` must
be a string (DingTalk refuses other JSON types there).

`outTrackId` is the card's id of our choosing, unique per card: the outbox id of the message it
carries, so a click leads back to the message and through it to the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CREATE_AND_DELIVER_PATH = "/v1.0/card/instances/createAndDeliver"
UPDATE_PATH = "/v1.0/card/instances"  # PUT
CALLBACK_TOPIC = "/v1.0/card/instances/callback"


GROUP_SPACE = "dtv1.card//IM_GROUP."
USER_SPACE = "dtv1.card//IM_ROBOT."


def group_space(open_conversation_id: str) -> str:
    """The openSpaceId of a group chat the robot is in (dingtalk-stream `card_replier.py`)."""
    return f"{GROUP_SPACE}{open_conversation_id}"


def user_space(userid: str) -> str:
    """The openSpaceId of the one-to-one chat between the robot and `userid`."""
    return f"{USER_SPACE}{userid}"


def space_of(open_space_id: str) -> tuple[str | None, str]:
    """(the group's openConversationId or None, the user's id or "") of an openSpaceId."""
    if open_space_id.startswith(GROUP_SPACE):
        return open_space_id.removeprefix(GROUP_SPACE), ""
    return None, open_space_id.removeprefix(USER_SPACE)


def undelivered(answer: Any) -> list[tuple[str, str]]:
    """The spaces createAndDeliver's `answer` says it did not deliver the card to, as (space,
    DingTalk's errorMsg). The call itself succeeds (HTTP 200, success true) whatever became of
    each space: the per-space verdict is only in `result.deliverResults[]`, each `{spaceType,
    spaceId, success, errorMsg}` (the card API's CreateAndDeliverResponseBody). An answer
    without that list says nothing against delivery."""
    result = answer.get("result") if isinstance(answer, dict) else None
    spaces = result.get("deliverResults") if isinstance(result, dict) else None
    if not isinstance(spaces, list):
        return []
    refused: list[tuple[str, str]] = []
    for space in spaces:
        if isinstance(space, dict) and space.get("success") is False:
            where = f"{space.get('spaceType', '')}.{space.get('spaceId', '')}".strip(".")
            refused.append((where or "?", str(space.get("errorMsg") or "")))
    return refused


def update_applied(answer: Any) -> bool:
    """Did DingTalk make the change a card update (`PUT /v1.0/card/instances`) asked for? Its
    answer is two booleans (the card API's UpdateCardResponseBody): `success` for the call,
    `result` for the change. An HTTP 200 with either false is a change not made: the card
    still shows the old status. A missing or non-boolean value says nothing against it."""
    if not isinstance(answer, dict):
        return True
    return answer.get("success") is not False and answer.get("result") is not False


def deliver_body(
    template_id: str,
    out_track_id: str,
    params: Mapping[str, str],
    robot_code: str,
    *,
    open_conversation_id: str = "",
    userid: str = "",
) -> dict[str, Any]:
    """createAndDeliver's body: a new card in a group (`open_conversation_id`) or in one
    person's chat with the robot (`userid`), whose clicks come back over Stream mode."""
    if bool(open_conversation_id) == bool(userid):
        raise ValueError("a card goes to a group or to one user")
    body: dict[str, Any] = {
        "cardTemplateId": template_id,
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": dict(params)},
        "callbackType": "STREAM",
    }
    if open_conversation_id:
        body["openSpaceId"] = group_space(open_conversation_id)
        body["imGroupOpenSpaceModel"] = {"supportForward": True}
        body["imGroupOpenDeliverModel"] = {"robotCode": robot_code}
    else:
        body["openSpaceId"] = user_space(userid)
        body["imRobotOpenSpaceModel"] = {"supportForward": True}
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT", "robotCode": robot_code}
    return body


def update_body(out_track_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    """`PUT /v1.0/card/instances`: change only the variables named in `params` (the others keep
    their values: `updateCardDataByKey`)."""
    return {
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": dict(params)},
        "cardUpdateOptions": {"updateCardDataByKey": True},
    }


def click_answer(params: Mapping[str, str]) -> dict[str, Any]:
    """What the Stream ack of a click carries to change the card at once (§10)."""
    return {"response": {"cardData": {"cardParamMap": dict(params)}}}
