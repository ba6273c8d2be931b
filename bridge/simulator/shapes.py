"""Shape checks for message bodies: robot webhook msgtypes and work-notification msgtypes.

Each check returns None when the shape is fine, or an errmsg naming the offending field, in the
style of DingTalk's 40035 "缺少参数 X" (missing parameter) / "不合法的参数 X" (invalid parameter).
The two APIs disagree on key casing (robot `actionCard`/`singleURL`/`messageURL` vs work notice
`action_card`/`single_url`), which is exactly the kind of slip these checks exist to catch, so
no key is matched case-insensitively.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

ROBOT_MSGTYPES = ("text", "markdown", "link", "actionCard", "feedCard")
WORK_NOTICE_MSGTYPES = ("text", "image", "voice", "file", "link", "markdown", "oa", "action_card")
# Robot msgtypes whose `at` block DingTalk honours; for the others it is ignored (§1.4).
AT_MSGTYPES = ("text", "markdown")
BTN_ORIENTATIONS = ("0", "1")

Check = Callable[[Mapping[str, Any], str], str | None]


def missing(where: str) -> str:
    return f"缺少参数 {where}"


def invalid(where: str, why: str) -> str:
    return f"不合法的参数 {where}: {why}"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- field helpers -------------------------------------------------------------------------------


def _text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    """A string field. Required fields must also be non-empty: an empty title or content is
    a bridge bug (a template that rendered nothing), so it is reported rather than delivered."""
    path = f"{where}.{key}"
    if key not in obj or obj[key] is None:
        return missing(path) if required else None
    value = obj[key]
    if not isinstance(value, str):
        return invalid(path, f"must be a string, got {_show(value)}")
    if required and not value:
        return invalid(path, "must not be empty")
    return None


def _first_error(*errors: str | None) -> str | None:
    return next((e for e in errors if e is not None), None)


def _object(obj: Mapping[str, Any], key: str, where: str) -> tuple[Mapping[str, Any], str | None]:
    path = f"{where}.{key}" if where else key
    value = obj.get(key)
    if value is None:
        return {}, missing(path)
    if not isinstance(value, dict):
        return {}, invalid(path, "must be a JSON object")
    return value, None


def _object_list(
    obj: Mapping[str, Any], key: str, where: str
) -> tuple[list[Mapping[str, Any]], str | None]:
    """A non-empty list of objects."""
    path = f"{where}.{key}"
    value = obj.get(key)
    if value is None:
        return [], missing(path)
    if not isinstance(value, list):
        return [], invalid(path, "must be a list")
    if not value:
        return [], invalid(path, "must not be empty")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            return [], invalid(f"{path}[{i}]", "must be a JSON object")
    return value, None


def _each(items: list[Mapping[str, Any]], where: str, keys: tuple[str, ...]) -> str | None:
    for i, item in enumerate(items):
        error = _first_error(*(_text(item, k, f"{where}[{i}]") for k in keys))
        if error:
            return error
    return None


def _orientation(obj: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
    path = f"{where}.{key}"
    if obj.get(key) is None:
        return missing(path) if required else None
    if obj[key] not in BTN_ORIENTATIONS:
        return invalid(path, f'must be "0" or "1", got {_show(obj[key])}')
    return None


# --- robot webhook (§1.4) ------------------------------------------------------------------------


def _robot_text(c: Mapping[str, Any], w: str) -> str | None:
    return _text(c, "content", w)


def _robot_markdown(c: Mapping[str, Any], w: str) -> str | None:
    return _first_error(_text(c, "title", w), _text(c, "text", w))


def _robot_link(c: Mapping[str, Any], w: str) -> str | None:
    return _first_error(
        _text(c, "title", w),
        _text(c, "text", w),
        _text(c, "messageUrl", w),
        _text(c, "picUrl", w, required=False),
    )


def _robot_action_card(c: Mapping[str, Any], w: str) -> str | None:
    error = _first_error(
        _text(c, "title", w),
        _text(c, "text", w),
        _orientation(c, "btnOrientation", w, required=False),
    )
    if error:
        return error
    # Whole-card jump (singleTitle + singleURL) or independent buttons (btns).
    if c.get("singleTitle") is not None or c.get("singleURL") is not None:
        return _first_error(_text(c, "singleTitle", w), _text(c, "singleURL", w))
    if c.get("btns") is None:
        return missing(f"{w}.singleTitle/singleURL or {w}.btns")
    buttons, error = _object_list(c, "btns", w)
    return error or _each(buttons, f"{w}.btns", ("title", "actionURL"))


def _robot_feed_card(c: Mapping[str, Any], w: str) -> str | None:
    links, error = _object_list(c, "links", w)
    return error or _each(links, f"{w}.links", ("title", "messageURL", "picURL"))


_ROBOT_CHECKS: dict[str, Check] = {
    "text": _robot_text,
    "markdown": _robot_markdown,
    "link": _robot_link,
    "actionCard": _robot_action_card,
    "feedCard": _robot_feed_card,
}


def _string_list(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return invalid(f"{where}.{key}", f"must be a list of strings, got {_show(value)}")
    return None


def _check_at(at: Any) -> str | None:
    if at is None:
        return None
    if not isinstance(at, dict):
        return invalid("at", "must be a JSON object")
    is_at_all = at.get("isAtAll")
    if is_at_all is not None and not isinstance(is_at_all, bool):
        return invalid("at.isAtAll", f"must be a boolean, got {_show(is_at_all)}")
    return _first_error(_string_list(at, "atMobiles", "at"), _string_list(at, "atUserIds", "at"))


def check_robot_message(body: Mapping[str, Any]) -> str | None:
    """None if `body` is a well-formed robot message, else an errmsg naming the problem."""
    msgtype = body.get("msgtype")
    if msgtype is None:
        return missing("msgtype")
    if msgtype not in ROBOT_MSGTYPES:
        return invalid("msgtype", f"{_show(msgtype)} is not one of {', '.join(ROBOT_MSGTYPES)}")
    content, error = _object(body, msgtype, "")
    error = error or _ROBOT_CHECKS[msgtype](content, msgtype)
    if error is None and msgtype in AT_MSGTYPES:
        error = _check_at(body.get("at"))
    return error


# --- work notifications (§3.1) -------------------------------------------------------------------


def _notice_text(c: Mapping[str, Any], w: str) -> str | None:
    return _text(c, "content", w)


def _notice_markdown(c: Mapping[str, Any], w: str) -> str | None:
    return _first_error(_text(c, "title", w), _text(c, "text", w))


def _notice_link(c: Mapping[str, Any], w: str) -> str | None:
    return _first_error(*(_text(c, k, w) for k in ("messageUrl", "picUrl", "title", "text")))


def _notice_action_card(c: Mapping[str, Any], w: str) -> str | None:
    error = _first_error(_text(c, "title", w), _text(c, "markdown", w))
    if error:
        return error
    if c.get("single_title") is not None or c.get("single_url") is not None:
        return _first_error(_text(c, "single_title", w), _text(c, "single_url", w))
    if c.get("btn_json_list") is None:
        return missing(f"{w}.single_title/single_url or {w}.btn_json_list")
    buttons, error = _object_list(c, "btn_json_list", w)
    return (
        error
        or _orientation(c, "btn_orientation", w, required=True)
        or _each(buttons, f"{w}.btn_json_list", ("title", "action_url"))
    )


def _notice_oa(c: Mapping[str, Any], w: str) -> str | None:
    # Deliberately minimal: the OA card has many optional parts; head and body are the core.
    return _first_error(_object(c, "head", w)[1], _object(c, "body", w)[1])


def _notice_media(c: Mapping[str, Any], w: str) -> str | None:
    return _text(c, "media_id", w)


_NOTICE_CHECKS: dict[str, Check] = {
    "text": _notice_text,
    "markdown": _notice_markdown,
    "link": _notice_link,
    "action_card": _notice_action_card,
    "oa": _notice_oa,
    "image": _notice_media,
    "file": _notice_media,
    "voice": _notice_media,
}


def check_work_notice_msg(msg: Any) -> str | None:
    """None if `msg` (the `msg` field of asyncsend_v2) is well-formed, else an errmsg."""
    if msg is None:
        return missing("msg")
    if not isinstance(msg, dict):
        return invalid("msg", f"must be a JSON object, got {_show(msg)}")
    msgtype = msg.get("msgtype")
    if msgtype is None:
        return missing("msg.msgtype")
    if msgtype == "actionCard":
        return invalid("msg.msgtype", '"actionCard" is the robot spelling; use "action_card"')
    if msgtype not in WORK_NOTICE_MSGTYPES:
        return invalid(
            "msg.msgtype", f"{_show(msgtype)} is not one of {', '.join(WORK_NOTICE_MSGTYPES)}"
        )
    content, error = _object(msg, msgtype, "msg")
    return error or _NOTICE_CHECKS[msgtype](content, f"msg.{msgtype}")
