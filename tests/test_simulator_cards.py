"""The simulator's cards (bridge/simulator/cardboard.py): each card's variables after its
changes, the data of a click frame, and the variables a click's ack carries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.simulator.cardboard import Clicks, answered_params, click_data, instances


def _call(op: str, track: str, params: dict[str, str], **body: Any) -> dict[str, Any]:
    return {
        "op": op,
        "app_key": "app",
        "body": {"outTrackId": track, "cardData": {"cardParamMap": params}, **body},
    }


def test_a_card_shows_its_variables_after_each_change() -> None:
    calls = [
        _call(
            "created", "t1", {"status": "firing", "title": "T"}, openSpaceId="dtv1.card//IM_GROUP.c"
        ),
        _call("updated", "t2", {"status": "lost"}),  # no such card: ignored
        _call("answered", "t1", {"status": "acked"}),
        _call("updated", "t1", {"status": "resolved"}),
    ]
    [card] = instances(calls)
    assert card["cardParamMap"] == {"status": "resolved", "title": "T"}
    assert [c["op"] for c in card["changes"]] == ["answered", "updated"]


@pytest.mark.parametrize(
    ("space", "space_type", "space_id"),
    [
        ("dtv1.card//IM_GROUP.cid==", "IM_GROUP", "cid=="),
        ("dtv1.card//IM_ROBOT.u1", "IM_ROBOT", "u1"),
    ],
)
def test_a_click_frame_says_which_card_who_where_and_what(
    space: str, space_type: str, space_id: str
) -> None:
    data = click_data({"outTrackId": "t1", "openSpaceId": space}, "u9", "silence_1h")
    assert (data["outTrackId"], data["userId"], data["spaceType"], data["spaceId"]) == (
        "t1", "u9", space_type, space_id
    )  # fmt: skip
    assert json.loads(data["content"]) == {
        "cardPrivateData": {"actionIds": ["silence_1h"], "params": {}}
    }


def test_only_a_200_ack_of_a_pushed_click_changes_its_card() -> None:
    applied: list[tuple[str, dict[str, str]]] = []
    clicks = Clicks(lambda track, params, now: applied.append((track, params)))
    clicks.pushed("m1", "t1")
    answer = json.dumps({"response": {"cardData": {"cardParamMap": {"status": "acked"}}}})
    clicks.acked("m1", 400, answer, 0.0)
    clicks.acked("other", 200, answer, 0.0)
    clicks.acked("m1", 200, json.dumps({"response": None}), 0.0)
    clicks.acked("m1", 200, answer, 0.0)
    assert applied == [("t1", {"status": "acked"})]


@given(
    st.one_of(st.none(), st.text(max_size=40), st.integers(), st.dictionaries(st.text(), st.text()))
)
def test_any_ack_data_is_variables_or_none(data: Any) -> None:
    params = answered_params(data)
    assert params is None or all(isinstance(v, str) for v in params.values())
