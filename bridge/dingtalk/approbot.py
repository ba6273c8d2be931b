"""Message -> the app robot's v1.0 send bodies (reference/dingtalk.md §6), and its `Channel`.

An internal app's robot sends to one group (`/v1.0/robot/groupMessages/send`, by
`openConversationId`) or one-to-one (`/v1.0/robot/oToMessages/batchSend`, at most 20 `userIds`
a call). Its message is a `msgKey` naming a template and a `msgParam` that is a JSON *string*
of at most 15,000 bytes.

The text is fitted and split exactly as the custom robot's is (dingtalk/robot.py, without
keywords or mentions, which the app robot has not): a robot body whose whole JSON fits in
15,000 bytes holds a msgParam that does too (the msgParam is the same fields, fewer of them),
so a long message becomes the same numbered parts. Each part goes to each batch of 20 users as
its own call, and DingTalk's answer (its `processQueryKey`, the users it refused) comes back as
the `Receipt` of the delivered outcome, so the outbox can keep it for `outbox recall`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import tzinfo
from typing import Any

from bridge import jsontext
from bridge.config.model import APP_ROBOT_BATCH, AppRobotTarget
from bridge.dingtalk import cards
from bridge.dingtalk.channel import Body, rate_key
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.openapi import App
from bridge.dingtalk.responses import Delivered, Receipt, SendOutcome, send_outcome
from bridge.dingtalk.robot import robot_bodies
from bridge.errors import DeliveryError, Reason
from bridge.model import Mention, Message

GROUP_SEND = "/v1.0/robot/groupMessages/send"
BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"
GROUP_RECALL = "/v1.0/robot/groupMessages/recall"
BATCH_RECALL = "/v1.0/robot/otoMessages/batchRecall"  # lower-case "oto", as DingTalk spells it
MSG_PARAM_MAX_BYTES = 15_000
MAX_BUTTONS = 5  # sampleActionCard2..5: vertical buttons


def msg_key_param(robot_body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A custom robot's body (dingtalk/robot.py's shapes) as the app robot's msgKey and
    msgParam (the object; it is sent as a JSON string)."""
    kind = robot_body["msgtype"]
    if kind == "text":
        return "sampleText", {"content": robot_body["text"]["content"]}
    if kind == "markdown":
        markdown = robot_body["markdown"]
        return "sampleMarkdown", {"title": markdown["title"], "text": markdown["text"]}
    if kind == "link":
        link = robot_body["link"]
        param = {"title": link["title"], "text": link["text"], "messageUrl": link["messageUrl"]}
        param["picUrl"] = link["picUrl"]
        return "sampleLink", param
    if kind == "actionCard":
        return _action_card(robot_body["actionCard"])
    raise ValueError(f"the app robot cannot send msgtype {kind}")


def _action_card(card: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    head = {"title": card["title"], "text": card["text"]}
    buttons = card.get("btns") or []
    if len(buttons) <= 1:
        title, url = (
            (buttons[0]["title"], buttons[0]["actionURL"])
            if buttons
            else (card["singleTitle"], card["singleURL"])
        )
        return "sampleActionCard", {**head, "singleTitle": title, "singleURL": url}
    if len(buttons) == 2 and card.get("btnOrientation") == "1":  # side by side
        return "sampleActionCard6", {
            **head,
            "buttonTitle1": buttons[0]["title"],
            "buttonUrl1": buttons[0]["actionURL"],
            "buttonTitle2": buttons[1]["title"],
            "buttonUrl2": buttons[1]["actionURL"],
        }
    shown = buttons[:MAX_BUTTONS]  # DingTalk has templates for 2 to 5 buttons
    param = dict(head)
    for index, button in enumerate(shown, start=1):
        param[f"actionTitle{index}"] = button["title"]
        param[f"actionURL{index}"] = button["actionURL"]
    return f"sampleActionCard{len(shown)}", param


def batches(userids: Sequence[str], size: int = APP_ROBOT_BATCH) -> list[list[str]]:
    """`userids` in DingTalk's batches (20 a call), in order."""
    return [list(userids[i : i + size]) for i in range(0, len(userids), size)]


def app_robot_bodies(
    target: AppRobotTarget, message: Message, limit: int = MSG_PARAM_MAX_BYTES, split: bool = True
) -> list[Body]:
    """The calls that carry `message`: every part (a long text split as the robot's is) to the
    group, or to every batch of users."""
    plain = replace(message, mention=Mention())  # the app robot's templates have no mentions
    bodies: list[Body] = []
    for robot_body in robot_bodies(plain, limit=limit, split=split):
        key, param = msg_key_param(robot_body)
        common = {"robotCode": target.robot_code, "msgKey": key, "msgParam": jsontext.dumps(param)}
        if target.open_conversation_id:
            bodies.append({**common, "openConversationId": target.open_conversation_id})
        else:
            bodies += [
                {**common, "userIds": users} for users in batches(recipients(target, message))
            ]
    return bodies


def card_bodies(target: AppRobotTarget, message: Message, message_id: str) -> list[Body]:
    """An alert's card (dingtalk/cards.py): one in the group, or one per user, each to that
    user's chat with the robot (the reference shows one openSpaceId per createAndDeliver; see
    docs/dingtalk-v1.md, cards). A card's outTrackId is the message's outbox id (and the
    user's id, one-to-one): a click on it leads back to the message and its alert."""
    params = dict(message.card)
    template, robot = target.card_template_id, target.robot_code
    if target.open_conversation_id:
        conversation = target.open_conversation_id
        return [
            cards.deliver_body(
                template, message_id, params, robot, open_conversation_id=conversation
            )
        ]
    return [
        cards.deliver_body(template, card_track(message_id, user), params, robot, userid=user)
        for user in recipients(target, message)
    ]


def card_track(message_id: str, userid: str) -> str:
    """The outTrackId of the card of message `message_id` in `userid`'s chat with the robot."""
    return f"{message_id}.{userid}"


CARD_KEY = "card:"  # app_robot_sends' key of a card delivery (no processQueryKey: no recall)


def card_receipt(body: Body, robot_code: str) -> Receipt | None:
    """What the bridge keeps of a card delivered (None for an update): recorded with the
    app robot's sends under CARD_KEY + its outTrackId, so `outbox show` tells a card."""
    if "cardTemplateId" not in body:
        return None
    track = str(body["outTrackId"])
    space = str(body.get("openSpaceId", ""))
    group, user = cards.space_of(space)
    return Receipt(
        process_query_key=CARD_KEY + track,
        robot_code=robot_code,
        conversation=group,
        users=(user,) if user else (),
        card=track,
    )


def recipients(target: AppRobotTarget, message: Message) -> tuple[str, ...]:
    """The users a one-to-one message goes to: the target's, or those of them a follow-up is
    for (the users DingTalk flow-controlled, sent again later)."""
    if not message.only_users:
        return target.userids
    wanted = set(message.only_users)
    users = tuple(u for u in target.userids if u in wanted)
    if not users:
        raise ValueError("none of the users this follow-up is for is in the target any more")
    return users


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)


def receipt_of(body: Body, answer: dict[str, Any]) -> Receipt | None:
    """What a send's answer says: its processQueryKey, and for a one-to-one send the users
    DingTalk refused (each list checked: the answer comes from outside). None without a key."""
    key = answer.get("processQueryKey")
    if not isinstance(key, str) or not key:
        return None
    users = _strings(body.get("userIds"))
    return Receipt(
        process_query_key=key,
        robot_code=str(body.get("robotCode", "")),
        conversation=body.get("openConversationId"),
        users=users,
        invalid=_strings(answer.get("invalidStaffIdList")),
        flow_controlled=_strings(answer.get("flowControlledStaffIdList")),
        filtered=_strings(answer.get("filteredStaffIdList")),
    )


class AppRobotChannel:
    """An internal app's robot, through the v1.0 API (reference/dingtalk.md §6)."""

    digest_limit = MSG_PARAM_MAX_BYTES

    def __init__(self, target: AppRobotTarget, client: DingTalkClient | None = None) -> None:
        """`client`: None for a channel that only builds bodies (the `render` preview)."""
        self.target = target
        self.client = client
        self.name = target.name
        self.policy = target.policy
        self.timeout = target.timeout
        self.path = GROUP_SEND if target.open_conversation_id else BATCH_SEND
        # DingTalk's QPS limit counts per API per app (uncertain, docs/dingtalk-v1.md).
        self.rate_key = rate_key("approbot", target.api_base, target.app_key, self.path)
        self.app = App(target.api_base, target.app_key, target.app_secret)

    def bodies(
        self, message: Message, ids: Sequence[str], accepted_at: float, tz: tzinfo
    ) -> list[Body]:
        if message.card_updates:
            params = dict(message.card)
            return [cards.update_body(track, params) for track in message.card_updates]
        if message.card and self.target.card_template_id and len(ids) == 1:
            return card_bodies(self.target, message, ids[0])
        return app_robot_bodies(self.target, message, split=self.policy.split)

    def digest_body(self, message: Message) -> Body:
        return app_robot_bodies(self.target, message, limit=sys.maxsize)[0]

    def post(self, body: Body) -> SendOutcome:
        if self.client is None:
            raise RuntimeError(f"target {self.name}: a channel made without a client cannot post")
        path, method, what = self.path, "POST", "app robot"
        if "cardTemplateId" in body:
            path, what = cards.CREATE_AND_DELIVER_PATH, "card delivery"
        elif "cardUpdateOptions" in body:
            path, method, what = cards.UPDATE_PATH, "PUT", "card update"
        try:
            answer = self.client.v1.call(self.app, path, body, self.timeout, what, method)
        except DeliveryError as exc:
            return send_outcome(exc, self.policy)
        if path == cards.UPDATE_PATH and not cards.update_applied(answer):
            # Taken and not applied: the card would go on showing what the update changes (a
            # resolved alert as firing). Not delivered; sent again, as after errcode -1.
            busy = DeliveryError(
                Reason.DINGTALK_BUSY,
                "DingTalk took the card update and did not apply it (result false)",
                retryable=True,
            )
            return send_outcome(busy, self.policy)
        if path != self.path:
            refused = cards.undelivered(answer) if path == cards.CREATE_AND_DELIVER_PATH else []
            if refused:
                # Accepted by the API and delivered nowhere: not "delivered". A space the robot
                # cannot post to (not in the group, the group disbanded) stays so: fix the
                # target, then `outbox retry` the dead letter.
                spaces = ", ".join(
                    f"{space} ({why or 'no reason given'})" for space, why in refused
                )
                error = DeliveryError(
                    Reason.DINGTALK_CONFIG,
                    f"DingTalk did not deliver the card to {spaces}",
                    retryable=False,
                    errmsg=refused[0][1] or None,
                )
                return send_outcome(error, self.policy)
            return Delivered(card_receipt(body, self.target.robot_code))
        receipt = receipt_of(body, answer)
        if receipt is not None:
            for why, users in (
                ("invalid", receipt.invalid),
                ("flow_controlled", receipt.flow_controlled),
                ("filtered", receipt.filtered),
            ):
                self.client.v1.count_refused(why, len(users))
        return Delivered(receipt)


RECALL_BATCH = 20  # processQueryKeys per recall call (stream reference §11: at most 20)


def recall(
    client: DingTalkClient, target: AppRobotTarget, conversation: str | None, keys: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """Recall the sends of `keys` (all to the group `conversation`, or all one-to-one when
    None), 20 keys a call: (keys DingTalk recalled, {key: why not} for the others). Raises
    DeliveryError when DingTalk (or the network) refused a call; the keys of the calls made
    before it are in neither list then, so the caller records nothing for them."""
    app = App(target.api_base, target.app_key, target.app_secret)
    done: list[str] = []
    failed: dict[str, str] = {}
    for start in range(0, len(keys), RECALL_BATCH):
        chunk = list(keys[start : start + RECALL_BATCH])
        body: dict[str, Any] = {"robotCode": target.robot_code, "processQueryKeys": chunk}
        path = BATCH_RECALL
        if conversation is not None:
            body["openConversationId"] = conversation
            path = GROUP_RECALL
        answer = client.v1.call(app, path, body, target.timeout, "recall")
        ok, refused = recall_answer(answer, chunk)
        done += ok
        failed.update(refused)
    return done, failed


def recall_answer(answer: dict[str, Any], keys: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """A recall's `{successResult: [key...], failedResult: {key: why}}` for `keys` (checked:
    it comes from outside). A key in neither list is counted as failed, with that said."""
    success = set(_strings(answer.get("successResult")))
    failures = answer.get("failedResult")
    failures = failures if isinstance(failures, dict) else {}
    done = [k for k in keys if k in success]
    failed = {
        k: str(failures.get(k) or "DingTalk did not say it recalled it")[:200]
        for k in keys
        if k not in success
    }
    return done, failed
