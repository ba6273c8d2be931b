"""Every page and action of the console, by path below its root. A page module adds its lines
here; app.py checks who may call each (an action: `Route.post`, the operator's role) before the
handler runs."""

from __future__ import annotations

from bridge.app.console import messages, overview
from bridge.app.console.app import Route

ROUTES: tuple[Route, ...] = (
    Route.get(r"/", overview.page),
    Route.get(r"/api/overview", overview.api),
    Route.get(r"/messages", messages.listing),
    Route.post(r"/messages/retry-dead", messages.retry_dead),
    Route.get(r"/messages/(?P<id>[A-Za-z0-9_-]{1,64})", messages.one),
    Route.post(r"/messages/(?P<id>[A-Za-z0-9_-]{1,64})/retry", messages.retry),
    Route.post(r"/messages/(?P<id>[A-Za-z0-9_-]{1,64})/purge", messages.purge),
)
