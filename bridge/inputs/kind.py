"""The runtime half of an input kind: how it answers a request, how `render` reads a sample.

Registered by `type` in bridge/inputs/registry.py, beside the config half of the same name
(bridge/config/inputs/registry.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bridge.config.model import HttpInput
from bridge.errors import InputError, Reason
from bridge.inputs import jsonbody
from bridge.inputs.bearer import bearer_refusal, header_token_refusal
from bridge.inputs.request import Request, Sink
from bridge.model import Event

# A routed kind's handler: the JSON of the 200 answer, or InputError. (`spec` is its own kind's
# compiled input: the router looked it up by path and the kind by its type.)
Serve = Callable[[Request, Any, Sink], Mapping[str, Any]]
# Events from a sample of what the input receives (the `render` command's file, the console's
# playground): a request body, or lines of a log, and where they came from (a file input's events
# name their log by it). Raises ValueError (cannot read it) or InputError.
Sample = Callable[[Any, bytes, str, datetime], list[Event]]
Parse = Callable[[Any, HttpInput, datetime], list[Event]]
# The request body as `Parse` takes it, from its bytes, the input and the Content-Type header.
Decode = Callable[[bytes, HttpInput, str], Any]
# A request's events, from its checked body, before anything is stored: the pure part of `Serve`
# (InputError when the request is refused). The HTTP server runs it for the requests it commits
# together before that commit begins (HttpApp.prepare).
Prepare = Callable[[Request, Any], list[Event]]


@dataclass(frozen=True)
class InputRuntime:
    type: str  # the config's `type:` (and its config half's registry key)
    serve: Serve | None = None  # None: not on the HTTP listener (a file input)
    sample: Sample | None = None  # None: it takes no alerts (`render` says so)
    takes: str = "alerts"  # what it takes, for that message
    # Its requests only compute and commit (no call out, nobody to wait for): served on the
    # HTTP server's loop thread when the store is local (bridge/app/httpserver.py).
    quick: bool = False
    prepare: Prepare | None = None  # `serve`'s part before the store, where it can be split off


def json_of(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


class Guarded(Protocol):
    """An input behind an optional token, with a body limit."""

    @property
    def token(self) -> str | None: ...

    @property
    def token_header(self) -> str | None:
        """The header that carries the token itself; None: `Authorization: Bearer`."""
        ...

    @property
    def max_body_bytes(self) -> int: ...


def guarded_body(request: Request, spec: Guarded) -> bytes:
    """The request's body, once its token is checked (401) and its size (413). The token comes
    as `Authorization: Bearer <token>`, or as the whole value of the input's `token_header`
    (webhooks only: GitLab sends its secret as X-Gitlab-Token)."""
    header = spec.token_header
    if header is not None:
        value = request.header("HTTP_" + header.upper().replace("-", "_"))
        refusal = header_token_refusal(value, spec.token, header)
    else:
        refusal = bearer_refusal(request.header("HTTP_AUTHORIZATION"), spec.token)
    if refusal is not None:
        raise InputError(401, Reason.UNAUTHORIZED, refusal)
    return request.body(spec.max_body_bytes)


def guarded_json(request: Request, spec: Guarded) -> Any:
    """The request's JSON body, once its token and size are checked."""
    return jsonbody.loads(guarded_body(request, spec))


def _json(raw: bytes, spec: HttpInput, content_type: str) -> Any:
    return jsonbody.loads(raw)


def json_events(parse: Parse, decode: Decode = _json) -> Prepare:
    """A bearer-guarded input's events: token, body, `decode` (JSON unless told), `parse`."""

    def prepare(request: Request, spec: HttpInput) -> list[Event]:
        raw = guarded_body(request, spec)
        return parse(decode(raw, spec, request.header("CONTENT_TYPE")), spec, request.clock.now())

    return prepare


def accept_events(events: list[Event], spec: HttpInput, sink: Sink) -> Mapping[str, Any]:
    """The events accepted (503 when a queue is full or the store busy), and the 200's JSON."""
    accepted = sink.accept(spec, events)
    # vars(), not asdict(): a flat record of ints; asdict's deep copy cost 5% of a request.
    return {"status": "accepted", "events": len(events), **vars(accepted)}


def json_post(prepare: Prepare) -> Serve:
    """The handler of an input whose events come from `prepare`: those events, accepted."""

    def serve(request: Request, spec: HttpInput, sink: Sink) -> Mapping[str, Any]:
        return accept_events(prepare(request, spec), spec, sink)

    return serve


def json_kind(type_: str, parse: Parse) -> InputRuntime:
    """A kind whose requests are JSON bodies turned into events by `parse`."""
    prepare = json_events(parse)
    return InputRuntime(
        type=type_,
        serve=json_post(prepare),
        prepare=prepare,
        quick=True,
        sample=lambda spec, data, source, now: parse(json_of(data), spec, now),
    )
