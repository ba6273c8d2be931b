"""A message sent at once, outside the outbox: `dingtalk-bridge send-test` and the console's
"send a test to this target". Its calls take turns in the robot's rate window like the senders'
calls do.

DingTalk counts a robot's calls whoever makes them, and the 21st in a minute locks the robot for
ten minutes (130101). A test sent past the window, by an operator pressing the button a few
times while a storm keeps the senders at 20 a minute, would lock out the very alerts it was
meant to check. So each part first takes a turn (delivery/robots.py, shared with the other
replicas through the store when the window has one); if the window has no room for every part
now, nothing is sent and the caller hears when there will be room. What DingTalk counted, and a
lockout it answered, are written to the store's window as the senders write theirs, so the
senders (of this process and of the others) count the test's calls too.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from bridge.clock import Clock
from bridge.config.model import Target
from bridge.delivery.failures import is_outage
from bridge.delivery.recording import write_window
from bridge.delivery.robots import RobotWindow, RobotWindows, Ticket
from bridge.dingtalk.channels import channel_for
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.responses import AwaitingResult, Failed, LockedOut
from bridge.errors import DeliveryError, Reason
from bridge.logs import fmt_fields
from bridge.model import Message
from bridge.store.api import Store

log = logging.getLogger("bridge.delivery")


class NoTurn(DeliveryError):
    """The robot's window has no room for the whole message now (or the robot is locked out):
    nothing was sent. `ready_at`: when there will be room, as the window sees it now."""

    def __init__(self, message: str, ready_at: float, locked: bool) -> None:
        super().__init__(Reason.RATE_LIMITED, message, retryable=True)
        self.ready_at = ready_at
        self.locked = locked


def send_once(
    windows: RobotWindows,
    store: Store,
    client: DingTalkClient,
    target: Target,
    message: Message,
    message_id: str,
    clock: Clock,
    tz: tzinfo,
) -> int | None:
    """Send every part of `message` to `target` now, each call a turn of its robot's window.
    Returns the task id of a work notice awaiting its result, else None. Raises NoTurn when the
    window has no room for every part (nothing sent), DeliveryError when DingTalk or the network
    refused a part."""
    channel = channel_for(target, client)
    window = windows.for_channel(channel)
    rate = channel.policy.rate
    now = clock.time()
    bodies = channel.bodies(message, [message_id], now, tz)
    tickets: list[Ticket] = []
    for _ in bodies:
        turn = window.acquire(rate, now)
        if not isinstance(turn, Ticket):
            _unused(window, store, tickets, now)
            raise _no_turn(window, target.name, len(bodies), rate.messages, rate.per, turn, now)
        tickets.append(turn)
    outcome = None
    for index, (body, ticket) in enumerate(zip(bodies, tickets, strict=True)):
        try:
            outcome = channel.post(body)
        except Exception:  # ours, around the call: it may have been made, so it counts
            at = clock.time()
            window.released(ticket, at)
            _record(window, store, [at], ticket, None, at)
            _unused(window, store, tickets[index + 1 :], at)
            raise
        at = clock.time()
        if isinstance(outcome, Failed):
            window.settle(ticket, at, counted=outcome.counted, failing=is_outage(outcome))
            lockout = at + outcome.seconds if isinstance(outcome, LockedOut) else None
            if lockout is not None:
                window.lock_out(lockout)
            _record(window, store, [at] if outcome.counted else [], ticket, lockout, at)
            _unused(window, store, tickets[index + 1 :], at)
            raise DeliveryError(
                outcome.reason,
                outcome.detail,
                retryable=False,
                errcode=outcome.errcode,
                errmsg=outcome.errmsg,
            )
        window.settle(ticket, at, counted=True, failing=False)
        _record(window, store, [at], ticket, None, at)
    return outcome.task_id if isinstance(outcome, AwaitingResult) else None


def _no_turn(
    window: RobotWindow, name: str, parts: int, limit: int, per: float, ready: float, now: float
) -> NoTurn:
    wait = max(0.0, ready - now)
    if window.locked_until > now:
        text = (
            f"target {name}'s robot is locked out by DingTalk for {wait:.0f} s more (130101):"
            " a call now would extend the lockout"
        )
        return NoTurn(text, ready, locked=True)
    what = "a message" if parts == 1 else f"a message of {parts} parts"
    text = (
        f"target {name}'s robot has no room in its rate window ({limit} calls in {per:g} s,"
        f" the senders' among them) for {what}: one call more would make DingTalk lock it for"
        f" 10 minutes (130101); room again in {wait:.0f} s"
    )
    return NoTurn(text, ready, locked=False)


def _unused(window: RobotWindow, store: Store, tickets: list[Ticket], now: float) -> None:
    """Give back turns taken for calls that will not be made: they count nowhere."""
    for ticket in tickets:
        window.released(ticket)
        _record(window, store, [], ticket, None, now)


def _record(
    window: RobotWindow,
    store: Store,
    calls: list[float],
    ticket: Ticket,
    lockout: float | None,
    now: float,
) -> None:
    """The calls into the store's window, in place of the turn's reservation. A store that
    cannot take them is logged, not raised: the test was sent (or not) whatever the store says,
    and this process's window counted it."""
    if ticket.reservation is None and not calls and lockout is None:
        return
    try:
        with store.transaction() as tx:
            write_window(tx, window, calls, ticket.reservation, lockout, now)
    except Exception as exc:
        log.warning(
            fmt_fields("test call not recorded in the rate window", robot=window.key, error=exc)
        )
