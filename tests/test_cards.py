"""Interactive cards: the bodies that deliver and update one (bridge/dingtalk/cards.py), and the
parser of a click DingTalk sends back over Stream mode (bridge/inputs/cardclick.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dingtalk import cards
from bridge.errors import InputError
from bridge.inputs.cardclick import MAX_ACTION_ID, MAX_ID, CardClick, parse_click


def test_a_group_card_is_delivered_into_the_group_by_the_robot_with_stream_callbacks() -> None:
    body = cards.deliver_body(
        "tpl.schema", "0123abcd", {"title": "DiskFull"}, "dingrobot", open_conversation_id="cidX=="
    )
    assert body == {
        "cardTemplateId": "tpl.schema",
        "outTrackId": "0123abcd",
        "cardData": {"cardParamMap": {"title": "DiskFull"}},
        "callbackType": "STREAM",
        "openSpaceId": "dtv1.card//IM_GROUP.cidX==",
        "imGroupOpenSpaceModel": {"supportForward": True},
        "imGroupOpenDeliverModel": {"robotCode": "dingrobot"},
    }


def test_a_personal_card_goes_to_the_robot_chat_of_that_user() -> None:
    body = cards.deliver_body("tpl", "id1", {}, "dingrobot", userid="manager1234")
    assert body["openSpaceId"] == "dtv1.card//IM_ROBOT.manager1234"
    assert body["imRobotOpenDeliverModel"] == {"spaceType": "IM_ROBOT", "robotCode": "dingrobot"}
    assert "imGroupOpenDeliverModel" not in body


@pytest.mark.parametrize(("group", "user"), [("", ""), ("cid", "u1")])
def test_a_card_goes_to_exactly_one_place(group: str, user: str) -> None:
    with pytest.raises(ValueError, match="a group or to one user"):
        cards.deliver_body("tpl", "id", {}, "r", open_conversation_id=group, userid=user)


def test_an_update_changes_only_the_named_variables() -> None:
    assert cards.update_body("id1", {"status": "resolved"}) == {
        "outTrackId": "id1",
        "cardData": {"cardParamMap": {"status": "resolved"}},
        "cardUpdateOptions": {"updateCardDataByKey": True},
    }
    assert cards.click_answer({"status": "acked"}) == {
        "response": {"cardData": {"cardParamMap": {"status": "acked"}}}
    }


def _click(action: Any = "ack", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "outTrackId": "0123abcd",
        "userId": "manager1234",
        "corpId": "ding123",
        "spaceType": "IM_GROUP",
        "content": json.dumps({"cardPrivateData": {"actionIds": [action], "params": {}}}),
    }
    data.update(fields)
    return data


def test_a_click_says_which_card_who_and_what() -> None:
    assert parse_click(_click("silence_1h")) == CardClick("0123abcd", "manager1234", "silence_1h")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "must be a JSON object"),
        (_click(outTrackId=""), "non-empty string outTrackId"),
        (_click(outTrackId=7), "non-empty string outTrackId"),
        (_click(userId=None), "non-empty string userId"),
        (_click(outTrackId="x" * (MAX_ID + 1)), "longer than"),
        (_click(content={"cardPrivateData": {}}), "must be a JSON string"),
        (_click(content="{"), "not valid JSON"),
        (_click(content="[" * 100 + "]" * 100), "nested deeper"),
        (_click(content='{"cardPrivateData": {"actionIds": []}}'), "names no action"),
        (_click(content='{"cardPrivateData": {"actionIds": [1]}}'), "names no action"),
        (_click(content='{"other": 1}'), "names no action"),
        (_click(""), "1 to 64 characters"),
        (_click("a" * (MAX_ACTION_ID + 1)), "1 to 64 characters"),
    ],
)
def test_a_malformed_click_is_refused_saying_why(data: Any, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        parse_click(data)
    assert caught.value.status == 400


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    data=st.dictionaries(
        st.sampled_from(["outTrackId", "userId", "content", "x"]), JSONISH | st.text(), max_size=4
    )
    | JSONISH
)
def test_any_callback_data_is_a_click_or_a_400(data: Any) -> None:
    try:
        click = parse_click(data)
    except InputError as exc:
        assert exc.status == 400
    else:
        assert click.out_track_id and click.user_id and click.action


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        # The call's own success says nothing of the spaces: only deliverResults does.
        (
            {
                "success": True,
                "result": {
                    "outTrackId": "t",
                    "deliverResults": [
                        {"spaceType": "IM", "spaceId": "cidA==", "success": True, "errorMsg": ""},
                        {"spaceType": "IM", "spaceId": "cidB==", "success": False,
                         "errorMsg": "机器人不在该群中"},
                    ],
                },
            },
            [("IM.cidB==", "机器人不在该群中")],
        ),
        ({"success": True, "result": {"outTrackId": "t", "deliverResults": [
            {"spaceType": "IM", "spaceId": "u1", "success": False}]}}, [("IM.u1", "")]),
        ({"success": True, "result": {"outTrackId": "t", "deliverResults": [
            {"success": False, "errorMsg": "x"}]}}, [("?", "x")]),
        # No verdict per space, or none against: nothing refused.
        ({"success": True, "result": {"outTrackId": "t"}}, []),
        ({"success": True, "result": {"deliverResults": [{"spaceId": "c", "success": True}]}}, []),
        ({"success": True, "result": {"deliverResults": "all good"}}, []),
        ({"result": {"deliverResults": [None, 3, {"spaceId": "c"}]}}, []),
        ({}, []),
        (None, []),
    ],
)  # fmt: skip
def test_the_spaces_a_card_did_not_reach_are_read_from_deliver_results(
    answer: Any, refused: list[tuple[str, str]]
) -> None:
    assert cards.undelivered(answer) == refused


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_SPACE = st.dictionaries(st.sampled_from(["spaceType", "spaceId", "success", "errorMsg"]), _JSON)
_RESULT = _JSON | st.fixed_dictionaries({"deliverResults": st.lists(_SPACE, max_size=4)})


@given(st.dictionaries(st.sampled_from(["success", "result", "x"]), _RESULT))
def test_any_answer_gives_a_list_of_refused_spaces_and_never_raises(answer: dict[str, Any]) -> None:
    refused = cards.undelivered(answer)
    spaces = answer.get("result", {}).get("deliverResults") if isinstance(
        answer.get("result"), dict) else None  # fmt: skip
    expected = (
        sum(1 for s in spaces if isinstance(s, dict) and s.get("success") is False)
        if isinstance(spaces, list)
        else 0
    )
    assert len(refused) == expected
    assert all(isinstance(where, str) and isinstance(why, str) for where, why in refused)


@pytest.mark.parametrize(
    ("answer", "applied"),
    [
        ({"success": True, "result": True}, True),
        # Taken (HTTP 200, success) and the change not made: the card keeps its old variables.
        ({"success": True, "result": False}, False),
        ({"success": False, "result": True}, False),
        ({"success": False}, False),
        ({"result": False}, False),
        # Nothing that says no: older answers (an object result), an empty body.
        ({"success": True, "result": {"outTrackId": "t"}}, True),
        ({"success": "false", "result": 0}, True),
        ({}, True),
        (None, True),
        ([], True),
    ],
)
def test_a_card_update_is_applied_unless_success_or_result_says_false(
    answer: Any, applied: bool
) -> None:
    assert cards.update_applied(answer) is applied


@given(_JSON | st.dictionaries(st.sampled_from(["success", "result", "x"]), _JSON))
def test_any_update_answer_is_read_as_applied_or_not_and_never_raises(answer: Any) -> None:
    said_false = isinstance(answer, dict) and any(
        answer.get(key) is False for key in ("success", "result")
    )
    assert cards.update_applied(answer) is not said_false
