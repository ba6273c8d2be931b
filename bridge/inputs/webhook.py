"""Any JSON object -> one Event. The input's templates derive labels, status and identity.

The body itself is data: templates read it as `body`, nothing in it is ever compiled as a template.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import jinja2

from bridge.config.model import HttpInput
from bridge.errors import bad_request
from bridge.inputs.kind import json_kind
from bridge.model import Event, Status, label_fingerprint


def _run(template: jinja2.Template, where: str, context: dict[str, Any]) -> str:
    try:
        return template.render(context).strip()
    except jinja2.UndefinedError as exc:
        raise bad_request(
            f"{where}: the body lacks a field the input needs ({exc.message})"
        ) from None
    except Exception as exc:  # a template over client data must not become a 500
        raise bad_request(
            f"{where}: cannot be computed from this body ({type(exc).__name__})"
        ) from None


def parse_webhook(body: Any, spec: HttpInput, now: datetime) -> list[Event]:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    context = {"body": body, "now": now}
    labels = {k: _run(t, f"labels.{k}", context) for k, t in spec.labels.items()}
    annotations = {k: _run(t, f"annotations.{k}", context) for k, t in spec.annotations.items()}
    status_text = _run(spec.status, "status", context) if spec.status else "firing"
    if status_text not in ("firing", "resolved"):
        raise bad_request(
            f'status must come out as "firing" or "resolved", got {status_text[:40]!r}'
        )
    status: Status = "firing" if status_text == "firing" else "resolved"
    if spec.fingerprint is not None:
        key = _run(spec.fingerprint, "fingerprint", context)
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    else:
        fingerprint = label_fingerprint(labels)
    return [
        Event(
            input=spec.name,
            kind="webhook",
            status=status,
            labels=labels,
            annotations=annotations,
            fingerprint=fingerprint,
            received_at=now,
            payload=body,
        )
    ]


KIND = json_kind("webhook", parse_webhook)
