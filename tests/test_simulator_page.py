"""The simulator's page (GET /) draws each message as DingTalk would (bridge.chatview), grouped
by where it went, newest first."""

from __future__ import annotations

import json
from typing import Any

from bridge.simulator.page import render_page
from bridge.simulator.state import SimulatorState

T0 = 1_764_000_000.0


def _send(state: SimulatorState, token: str, body: dict[str, Any], at: float) -> None:
    status, reply = state.robot_send(at, {"access_token": token}, json.dumps(body).encode())
    assert (status, reply["errcode"]) == (200, 0), reply


def _markdown(title: str, text: str, mobiles: list[str]) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": text},
        "at": {"atMobiles": mobiles},
    }


def test_the_page_draws_markdown_and_highlights_a_pinged_mention() -> None:
    state = SimulatorState(accept_unknown_robots=True)
    text = "### Disk full on host-3\n\n@13800000000 please look, @13900000000 too"
    _send(state, "token-ops-1234", _markdown("DiskFull", text, ["13800000000"]), T0)
    page = render_page(state.messages(), state.requests(), T0 + 1)
    assert "<h3>Disk full on host-3</h3>" in page
    assert '<span class="mention pinged">@13800000000</span>' in page
    assert '<span class="mention pinged">@13900000000' not in page
    assert "@13900000000 is in the text but not in at.atMobiles: shown, not pinged" in page
    assert "pings: @13800000000" in page and "title: DiskFull" in page
    assert "token-ops-1234" not in page and "robot toke…" in page  # the token is masked
    assert ".mention.pinged{" in page  # the bubbles' stylesheet is on the page


def test_the_page_groups_by_robot_with_the_most_recent_first() -> None:
    state = SimulatorState(accept_unknown_robots=True)
    _send(state, "robot-aaaa", _markdown("first", "# one", []), T0)
    _send(state, "robot-bbbb", _markdown("second", "# two", []), T0 + 1)
    _send(state, "robot-aaaa", _markdown("third", "# three", []), T0 + 2)
    page = render_page(state.messages(), state.requests(), T0 + 3)
    assert page.count('<section class="conv">') == 2
    assert page.index("<h1>three</h1>") < page.index("<h1>one</h1>") < page.index("<h1>two</h1>")
    assert "2 message(s)" in page and "1 message(s)" in page


def test_the_page_shows_interactive_cards_with_their_data() -> None:
    card = {
        "index": 0,
        "time": T0,
        "app_key": "dingapp",
        "op": "created",
        "body": {
            "outTrackId": "track-1",
            "cardTemplateId": "tpl.schema",
            "cardData": {"cardParamMap": {"status": "<firing>"}},
        },
    }
    page = render_page([], [], T0, [card])
    assert "Interactive cards" in page and "card tpl.schema" in page
    assert "<td>&lt;firing&gt;</td>" in page and "track-1" in page
