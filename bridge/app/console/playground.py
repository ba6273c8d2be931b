"""The Playground page: pick an input and a sample (a preset's, a bundled one, one of the last
bodies the input took, or a pasted one), edit a rule and its template, and see what the pipeline
would decide and each message as DingTalk shows it (bridge.chatview), its size against the
limit and its parts. Rendering never acts (trial.py); "send to the simulator" posts to the
simulator the config names (`server.console.simulator`), "send a test" (the operator's) to the
real target.

One trial runs at a time per process: each compiles the whole config, and a page that types
fast must not take the daemon's CPU from the alerts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import yaml

from bridge.app.console import samples
from bridge.app.console.bodies import body_view
from bridge.app.console.trial import Attempt, Delivered, Trial, run
from bridge.app.console.web import Answer, Refused, Request, json_answer
from bridge.app.console.words import word
from bridge.config.model import RobotTarget
from bridge.config.yamlsource import load_document
from bridge.delivery.oneoff import NoTurn, send_once
from bridge.dingtalk.channels import bodies_for
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies
from bridge.dingtalk.sizing import encode
from bridge.errors import DeliveryError
from bridge.locales import Locale
from bridge.logs import REDACTOR, fmt_fields
from bridge.pipeline.ids import new_id

if TYPE_CHECKING:
    from bridge.app.console.app import Console

log = logging.getLogger("bridge.console")

# Inputs whose bodies the playground cannot take: encrypted callbacks, chat commands.
_NOT_PAYLOADS = frozenset({"dingtalk_callback", "dingtalk_robot"})
_BUSY_WAIT = 5.0  # seconds a trial waits for the one before it
SIMULATOR_TOKEN = "playground-demo"  # the simulator registers an unknown token as a plain robot
_TRIAL = threading.Lock()


def page(console: Console, req: Request) -> Answer:
    return console.views.page(
        req,
        "playground.html",
        nav="playground",
        inputs=_inputs(console),
        simulator=console.settings.simulator is not None,
        may_edit=req.session is not None and req.session.role == "operator",
        limit=ROBOT_MAX_BYTES,
    )


def sample_list(console: Console, req: Request) -> Answer:
    """The samples of one input: presets' and bundled ones, then what it took lately."""
    spec = console.bridge.config.inputs.get(req.query("input"))
    if spec is None or spec.type in _NOT_PAYLOADS:
        raise Refused(404, "No such input.")
    preset = _document_input(console, spec.name).get("preset")
    found = samples.for_input(spec.type, preset if isinstance(preset, str) else None)
    out = [{"label": s.label, "text": s.text} for s in found]
    for index, got in enumerate(console.bridge.recent_bodies(spec.name), start=1):
        label = word(req.locale, "received %(time)s", time=console.views.when(got.at))
        out.append({"label": f"#{index} {label}", "text": got.body.decode("utf-8", "replace")})
    return json_answer(200, {"samples": out})


def render(console: Console, req: Request) -> Answer:
    trial = _trial(console, req)
    # A template can read what the config can (an include of a file beside it): a secret the
    # config knows never reaches the page, as it never reaches the log.
    shown = json.loads(
        REDACTOR.scrub(json.dumps(_shown(console, trial, req.locale), ensure_ascii=False))
    )
    return json_answer(200, shown)


def send_simulator(console: Console, req: Request) -> Answer:
    """Post the chosen message's bodies to the simulator's robot, for a demo."""
    url = console.settings.simulator
    if url is None:
        raise Refused(404, "No simulator is configured.")
    delivered = _chosen(console, req)
    keywords = delivered.target.keywords if isinstance(delivered.target, RobotTarget) else ()
    answers = []
    for body in robot_bodies(delivered.message, keywords):
        try:
            reply = console.bridge.session.post(
                f"{url}/robot/send",
                params={"access_token": SIMULATOR_TOKEN},
                data=encode(body),
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
            answer = reply.json()
        except (requests.RequestException, ValueError) as exc:
            return json_answer(200, {"ok": False, "error": f"the simulator did not answer: {exc}"})
        answers.append(answer)
        if not isinstance(answer, dict) or answer.get("errcode") != 0:
            break
    last = answers[-1] if answers else {}
    return json_answer(
        200,
        {
            "ok": last.get("errcode") == 0,
            "errcode": last.get("errcode"),
            "errmsg": last.get("errmsg"),
        },
    )


def send_test(console: Console, req: Request) -> Answer:
    """Send the chosen message to its real target now, as `dingtalk-bridge send-test` does
    (delivery/oneoff.py: every part at once, each a turn of the robot's rate window, DingTalk's
    answer shown here; not through the outbox, whose answer would come later, in the log). A
    window without room for it sends nothing and says when there will be."""
    delivered = _chosen(console, req)
    bridge = console.bridge
    try:
        task_id = send_once(
            bridge.windows,
            bridge.store,
            bridge.client,
            delivered.target,
            delivered.message,
            new_id(),
            console.clock,
            bridge.config.timezone,
        )
    except DeliveryError as exc:
        log.info(
            fmt_fields(
                "playground test refused",
                target=delivered.target.name,
                who=req.who,
                reason=exc.reason.value,
                errcode=exc.errcode,
            )
        )
        error = REDACTOR.scrub(str(exc))
        answer: dict[str, Any] = {
            "ok": False,
            "errcode": exc.errcode,
            "errmsg": exc.errmsg,
            "error": error,
        }
        if isinstance(exc, NoTurn):
            answer["retry_in"] = max(0, round(exc.ready_at - console.clock.time()))
        return json_answer(200, answer)
    log.info(fmt_fields("playground test sent", target=delivered.target.name, who=req.who))
    return json_answer(200, {"ok": True, "errcode": 0, "errmsg": "ok", "task_id": task_id})


# -- the trial ------------------------------------------------------------------------------------


def _attempt(req: Request) -> Attempt:
    asked = req.json()
    name, payload = asked.get("input"), asked.get("payload")
    rule, rule_yaml, template = asked.get("rule", ""), asked.get("rule_yaml"), asked.get("template")
    if not isinstance(name, str) or not isinstance(payload, str):
        raise Refused(400, "input and payload are required strings.")
    if not isinstance(rule, str):
        raise Refused(400, "rule must be a string.")
    for value in (rule_yaml, template):
        if value is not None and not isinstance(value, str):
            raise Refused(400, "rule_yaml and template must be strings.")
    return Attempt(name, payload.encode("utf-8", "replace"), rule, rule_yaml, template or None)


def _trial(console: Console, req: Request) -> Trial:
    attempt = _attempt(req)
    operator = req.session is not None and req.session.role == "operator"
    if (attempt.rule_yaml is not None or attempt.template is not None) and not operator:
        # Typed templates can include files beside the config: the operator's, not a viewer's.
        raise Refused(403, "Editing a rule or template needs the operator's token.")
    spec = console.bridge.config.inputs.get(attempt.input)
    if spec is None or spec.type in _NOT_PAYLOADS:
        raise Refused(404, "No such input.")
    if not _TRIAL.acquire(timeout=_BUSY_WAIT):
        raise Refused(429, "The playground is busy: try again.")
    try:
        return run(console.bridge.config.path, os.environ, attempt, console.clock.now())
    finally:
        _TRIAL.release()


def _chosen(console: Console, req: Request) -> Delivered:
    index = req.query("message", "0")
    trial = _trial(console, req)
    if trial.problems or not index.isdigit() or int(index) >= len(trial.messages):
        raise Refused(409, "There is no such message to send: see the problems.")
    return trial.messages[int(index)]


def _shown(console: Console, trial: Trial, locale: Locale) -> dict[str, Any]:
    messages = []
    tz = trial.config.timezone if trial.config is not None else console.bridge.config.timezone
    for delivered in trial.messages:
        try:
            bodies = bodies_for(delivered.target, delivered.message, [new_id()], trial.at, tz)
            unsendable = ""
        except DeliveryError as exc:  # a work notice whose recipients resolve to nobody
            bodies, unsendable = [], str(exc)
        messages.append(
            {
                "rule": delivered.rule,
                "target": delivered.target.name,
                "type": delivered.target.type,
                "parts": [_part(delivered, body) for body in bodies],
                "unsendable": unsendable,
            }
        )
    live = console.bridge.config
    # The trial reads the file as it is now: say so when that is not what the daemon runs.
    changed = bool(trial.file_digest) and trial.file_digest != live.file_digest
    notice = (
        word(
            locale,
            "%(file)s changed since the daemon loaded it: this shows the file as it is now,"
            " which takes effect at the next reload.",
            file=live.path.name,
        )
        if changed
        else ""
    )
    return {
        "problems": [asdict(p) for p in trial.problems],
        "decisions": list(trial.decisions),
        "state_problem": trial.state_problem,
        "file_changed": changed,
        "notice": notice,
        "messages": messages,
    }


def _part(delivered: Delivered, body: dict[str, Any]) -> dict[str, Any]:
    """One body as DingTalk shows it, with its size against the target's limit."""
    shown = body_view(delivered.target.type, body)
    view = shown.view
    assert view is not None  # a body made now always parses
    return {
        "html": view.html,
        "kind": view.kind,
        "title": view.title,
        "mentions": list(view.mentions),
        "problems": list(view.problems),
        "bytes": shown.size,
        "limit": shown.limit,
        "body": shown.text,
    }


# -- what the page offers -------------------------------------------------------------------------


def _inputs(console: Console) -> list[dict[str, Any]]:
    """The inputs that take payloads, each with the rules fed by it (their YAML and inline or
    file template as written, ${VAR} not expanded: the page must not show the environment)."""
    config = console.bridge.config
    rules_data = _document(console).get("rules")
    rules_data = rules_data if isinstance(rules_data, list) else []
    out = []
    for name, spec in config.inputs.items():
        if spec.type in _NOT_PAYLOADS:
            continue
        rules = []
        for rule, data in zip(config.rules, rules_data, strict=False):
            if (rule.inputs and name not in rule.inputs) or not isinstance(data, dict):
                continue
            # Its template is edited in a box of its own (the trial puts it back).
            shown = {k: v for k, v in data.items() if k != "template"}
            text = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100)
            rules.append(
                {
                    "name": rule.name,
                    "yaml": text,
                    "template": samples.template_text(config.path.parent, data.get("template")),
                }
            )
        out.append({"name": name, "type": spec.type, "rules": rules})
    return out


def _document(console: Console) -> dict[str, Any]:
    path = Path(console.bridge.config.path)
    try:
        doc, _ = load_document(path.read_text("utf-8"), str(path), {})
    except (OSError, UnicodeDecodeError):
        return {}
    return doc.data if isinstance(doc.data, dict) else {}


def _document_input(console: Console, name: str) -> dict[str, Any]:
    inputs = _document(console).get("inputs")
    spec = inputs.get(name) if isinstance(inputs, dict) else None
    return spec if isinstance(spec, dict) else {}
