"""The console's WSGI application: sign-in, the checks every request passes, and the routing
to the pages (each page module lists its routes: overview.py, ...).

The order of the checks is the point: the static assets and the sign-in form are open (they
hold nothing); everything else needs a session cookie or the bearer token; an action needs the
operator's role, a console that is not read-only, and, with a cookie, the CSRF token and a
same-origin request. A 4xx is a page that says what is wrong (JSON for the /api/ routes); a bug
of ours is a logged 500, and the daemon goes on.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from bridge.app.console import auth
from bridge.app.console.views import Views
from bridge.app.console.web import (
    SECURITY_HEADERS,
    Answer,
    Refused,
    Request,
    json_answer,
    redirect,
)
from bridge.app.console.words import word
from bridge.chatview import stylesheet
from bridge.clock import Clock
from bridge.config.model import ConsoleConfig
from bridge.locales import LOCALES, Locale
from bridge.logs import fmt_fields

if TYPE_CHECKING:
    from bridge.app.bridge import Bridge

log = logging.getLogger("bridge.console")

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_CACHED = (("Cache-Control", "max-age=300"),)  # the bundled CSS and scripts hold no state
LANG_COOKIE = "dtb_lang"
MAX_FAILED_LOGINS = 20  # per minute, per process: guessing a 16+ character token stays hopeless
_STATUS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

Handler = Callable[["Console", Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]  # matched against the path below the console's root
    handler: Handler
    acts: bool = False  # changes something: the operator's role, not read-only

    @classmethod
    def get(cls, pattern: str, handler: Handler) -> Route:
        return cls("GET", re.compile(pattern), handler)

    @classmethod
    def post(cls, pattern: str, handler: Handler, acts: bool = True) -> Route:
        return cls("POST", re.compile(pattern), handler, acts)


class Console:
    def __init__(self, bridge: Bridge, clock: Clock, routes: Sequence[Route]) -> None:
        self.bridge = bridge
        self.clock = clock
        self.routes = tuple(routes)
        self.views = Views(lambda: bridge.config.timezone, lambda: self.settings.read_only)
        self._failed_logins: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def settings(self) -> ConsoleConfig:
        console = self.bridge.config.server.console
        assert console is not None, "served only while configured"
        return console

    # -- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        settings = self.settings
        path = str(environ.get("PATH_INFO", "")) or "/"
        below = path[len(settings.path) :] or "/"
        req = Request(
            environ,
            str(environ.get("REQUEST_METHOD", "GET")),
            below,
            settings.path,
            self._locale(environ),
        )
        try:
            answer = self._answer(req, settings)
        except Refused as refused:
            answer = self._refusal(req, refused)
        except Exception:
            log.exception(fmt_fields("console request failed", path=below))
            answer = json_answer(500, {"status": "error", "error": "internal error; see the log"})
        headers = [("Content-Type", answer.content_type), ("Content-Length", str(len(answer.body)))]
        own = {name for name, _ in answer.headers}  # an answer's own (a static file's caching)
        headers += [*(h for h in SECURITY_HEADERS if h[0] not in own), *answer.headers]
        lang = req.query("lang")
        if lang in LOCALES:
            headers.append(
                ("Set-Cookie", f"{LANG_COOKIE}={lang}; Path={settings.path}; SameSite=Strict")
            )
        start(f"{answer.status} {_STATUS.get(answer.status, '')}".rstrip(), headers)
        return [b"" if req.method == "HEAD" else answer.body]

    def _locale(self, environ: dict[str, Any]) -> Locale:
        asked = parse_qs(str(environ.get("QUERY_STRING", ""))[:4096]).get("lang", [""])[0]
        for choice in (asked, auth.read_cookie(environ, LANG_COOKIE)):
            for locale in LOCALES:
                if choice == locale:
                    return locale
        return self.bridge.config.locale

    def _answer(self, req: Request, settings: ConsoleConfig) -> Answer:
        method = "GET" if req.method == "HEAD" else req.method
        if req.path.startswith("/static/") and method == "GET":
            return _static(req.path[len("/static/") :])
        if req.path == "/login":
            return self._login(req, settings)
        self._authenticate(req, settings)
        if req.path == "/logout" and method == "POST":
            self._check_csrf(req, settings)
            expired = auth.cookie_header("", settings.path, 0, _secure(req))
            return redirect(f"{settings.path}/login", (("Set-Cookie", expired),))
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.fullmatch(req.path)
            if found is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            req.params = found.groupdict()
            if method == "POST":
                self._check_csrf(req, settings)
            if route.acts and not req.may_act:
                raise Refused(
                    403,
                    "This console is read-only."
                    if settings.read_only
                    else "This action needs the operator's token.",
                )
            return route.handler(self, req)
        if allowed:
            raise Refused(405, f"{req.path} takes {', '.join(sorted(set(allowed)))}")
        raise Refused(404, "Not found")

    # -- who asks ---------------------------------------------------------------------------------

    def _authenticate(self, req: Request, settings: ConsoleConfig) -> None:
        now = self.clock.time()
        header = str(req.environ.get("HTTP_AUTHORIZATION", ""))
        if header.startswith("Bearer "):
            role = auth.role_of(header[len("Bearer ") :], settings.token, settings.viewer_token)
            if role is None:
                self._failed()
                raise Refused(401, "This token is not valid.")
            req.session = auth.Session(role, "", 0, "")
            req.bearer = True
        else:
            value = auth.read_cookie(req.environ)
            session = auth.verify(value, settings.token, settings.viewer_token, now)
            if session is None:
                if req.method in ("GET", "HEAD") and not req.path.startswith("/api/"):
                    raise _SignIn(req.path)
                raise Refused(401, "Sign in first.")
            req.session = session
            req.csrf = auth.csrf_token(session, settings.token, settings.viewer_token)
        req.may_act = req.session.role == "operator" and not settings.read_only

    def _check_csrf(self, req: Request, settings: ConsoleConfig) -> None:
        if req.bearer:
            return
        assert req.session is not None
        given = str(req.environ.get("HTTP_X_CSRF_TOKEN", ""))
        if not given and _is_form(req):
            given = req.field("csrf")
        if not auth.same_origin(req.environ) or not auth.csrf_ok(
            given, req.session, settings.token, settings.viewer_token
        ):
            log.warning(fmt_fields("console refused a cross-site request", path=req.path))
            raise Refused(403, "The request did not come from this console's page.")

    def _failed(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._failed_logins and self._failed_logins[0] < now - 60:
                self._failed_logins.popleft()
            self._failed_logins.append(now)
            too_many = len(self._failed_logins) > MAX_FAILED_LOGINS
        log.info(fmt_fields("console sign-in refused"))
        if too_many:
            raise Refused(429, "Too many failed sign-ins: wait a minute.")

    def _login(self, req: Request, settings: ConsoleConfig) -> Answer:
        after = req.query("next", "/")
        after = after if after.startswith("/") and not after.startswith("//") else "/"
        if req.method in ("GET", "HEAD"):
            return self.views.page(req, "login.html", after=after, error="")
        if req.method != "POST":
            raise Refused(405, "/login takes GET and POST")
        if not auth.same_origin(req.environ):
            raise Refused(403, "The request did not come from this console's page.")
        with self._lock:
            recent = sum(1 for t in self._failed_logins if t > time.monotonic() - 60)
        if recent > MAX_FAILED_LOGINS:
            raise Refused(429, "Too many failed sign-ins: wait a minute.")
        role = auth.role_of(req.field("token"), settings.token, settings.viewer_token)
        if role is None:
            self._failed()
            error = word(req.locale, "This token is not valid.")
            return self.views.page(req, "login.html", 401, after=after, error=error)
        name = " ".join(req.field("name").split())[: auth.MAX_NAME_CHARS]
        value = auth.mint(
            role, name, settings.token, settings.viewer_token, self.clock.time(), settings.session
        )
        log.info(fmt_fields("console sign-in", role=role, name=name or "-"))
        cookie = auth.cookie_header(value, settings.path, int(settings.session), _secure(req))
        return redirect(settings.path + after, (("Set-Cookie", cookie),))

    # -- answers ----------------------------------------------------------------------------------

    def _refusal(self, req: Request, refused: Refused) -> Answer:
        if isinstance(refused, _SignIn):
            return redirect(f"{req.base}/login?next={quote(refused.after, safe='/')}")
        text = word(req.locale, str(refused))
        if req.path.startswith("/api/") or _wants_json(req):
            return json_answer(refused.status, {"status": "error", "error": text})
        return self.views.page(req, "error.html", refused.status, error=text, code=refused.status)


class _SignIn(Refused):
    """A page asked for without a session: the sign-in form, then back here."""

    def __init__(self, after: str) -> None:
        super().__init__(303, "Sign in first.")
        self.after = after


def _secure(req: Request) -> bool:
    return req.environ.get("wsgi.url_scheme") == "https"


def _is_form(req: Request) -> bool:
    return str(req.environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded")


def _wants_json(req: Request) -> bool:
    return "application/json" in str(req.environ.get("HTTP_ACCEPT", "")) or str(
        req.environ.get("CONTENT_TYPE", "")
    ).startswith("application/json")


def _static(name: str) -> Answer:
    if name == "chatview.css":  # how DingTalk draws a message: bridge/chatview/
        return Answer(200, stylesheet().encode(), _STATIC_TYPES[".css"], _CACHED)
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES:
        raise Refused(404, "Not found")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise Refused(404, "Not found") from exc
    return Answer(200, body, _STATIC_TYPES[path.suffix], _CACHED)
