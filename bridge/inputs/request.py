"""What an input kind's HTTP handler is given: the request, and the intake it hands events to.

The router (bridge/inputs/http.py) has checked the method and found the input by path; the
handler reads the body within the input's limit, checks what its kind checks, and returns the
JSON of a 200 answer, or raises InputError (the router answers it and counts the rejection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bridge.clock import Clock
from bridge.config.model import RoutedInput
from bridge.errors import InputError, Reason
from bridge.inputs.signed import SignedOnce
from bridge.model import Accepted, Event

if TYPE_CHECKING:
    from bridge.alerting.alertstate import PostedAlert
    from bridge.config.inputs.prometheus import PrometheusInput
    from bridge.config.model import ChatInput
    from bridge.inputs.chat import ChatMessage


class Sink(Protocol):
    """Where inputs hand what they accepted (the running bridge)."""

    def accept(self, spec: RoutedInput, events: list[Event]) -> Accepted: ...

    def accept_once(
        self, spec: RoutedInput, events: list[Event], request: SignedOnce
    ) -> Accepted | None:
        """`accept`, remembering `request` in the same commit: None when this very request was
        taken before (nothing is done again), InputError 409 when its key came with another
        body."""
        ...

    def accept_posted(self, spec: PrometheusInput, alerts: list[PostedAlert]) -> Accepted:
        """Alerts posted to a prometheus input: kept as Alertmanager keeps them, and what
        changed passed on as events, in one commit (pipeline/tracking.py)."""
        ...

    def claim(self, request: SignedOnce) -> None:
        """Remember `request` now; InputError 409 if its key was used before."""
        ...

    def command(self, spec: ChatInput, message: ChatMessage) -> dict[str, Any]: ...


@dataclass(slots=True)  # built for every request: a frozen dataclass's __init__ costs more
class Request:
    environ: Mapping[str, Any]  # the WSGI environ
    clock: Clock
    raw: bytes = b""  # the body `body()` read (the router hands it to Intake.received)

    def header(self, name: str) -> str:
        """A request header by its WSGI name (HTTP_AUTHORIZATION), "" when absent."""
        value = self.environ.get(name, "")
        return value if isinstance(value, str) else ""

    def body(self, limit: int) -> bytes:
        """The body, at most `limit` bytes (413 beyond, checked before reading when the length
        is declared), never empty (400)."""
        too_large = InputError(413, Reason.TOO_LARGE, f"the body is larger than {limit} bytes")
        length_text = self.environ.get("CONTENT_LENGTH") or ""
        stream = self.environ["wsgi.input"]
        if length_text:
            if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 18:
                raise InputError(400, Reason.BAD_REQUEST, "bad Content-Length")
            length = int(length_text)
            if length > limit:
                raise too_large
            raw: bytes = stream.read(length)
        else:  # chunked: read one byte past the limit to know whether it was exceeded
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise too_large
        if not raw:
            raise InputError(400, Reason.BAD_REQUEST, "the body is empty: expected a JSON object")
        self.raw = raw
        return raw
