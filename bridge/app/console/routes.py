"""Every page and action of the console, by path below its root. A page module adds its lines
here; app.py checks who may call each (an action: `Route.post`, the operator's role) before the
handler runs."""

from __future__ import annotations

from bridge.app.console import messages, overview, playground, silences
from bridge.app.console.app import Route

ROUTES: tuple[Route, ...] = (
    Route.get(r"/", overview.page),
    Route.get(r"/api/overview", overview.api),
    Route.get(r"/messages", messages.listing),
    Route.post(r"/messages/retry-dead", messages.retry_dead),
    Route.get(r"/messages/(?P<id>[A-Za-z0-9_+-]{1,80})", messages.one),
    Route.post(r"/messages/(?P<id>[A-Za-z0-9_+-]{1,80})/retry", messages.retry),
    Route.post(r"/messages/(?P<id>[A-Za-z0-9_+-]{1,80})/purge", messages.purge),
    Route.get(r"/silences", silences.page),
    Route.post(r"/silences", silences.add),
    Route.post(r"/silences/(?P<id>[A-Za-z0-9_-]{1,64})/expire", silences.expire),
    Route.post(r"/acks", silences.ack),
    Route.post(r"/api/silences/preview", silences.preview_api, acts=False),
    Route.get(r"/playground", playground.page),
    Route.get(r"/api/playground/samples", playground.sample_list),
    Route.post(r"/api/playground/render", playground.render, acts=False),
    Route.post(r"/api/playground/simulator", playground.send_simulator, acts=False),
    Route.post(r"/api/playground/send", playground.send_test),
)
