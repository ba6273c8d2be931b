"""The grafana input: Grafana unified alerting's webhook (version "1") read into events, its
identity and status, the template variables, the bundled templates' golden renders, the 400s
that say what is wrong, and `check`/`render` on a config that has one."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config, HttpInput
from bridge.config.templating import COMMON_VARIABLES, GRAFANA_VARIABLES
from bridge.errors import ConfigError, InputError
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.grafana import parse_grafana
from bridge.locales import LOCALES
from bridge.model import Event
from bridge.pipeline.render import render, template_context
from bridge.store.codec import event_from_json, event_to_json
from tests.harness import FIXTURES, bridge_cli, compile_yaml, fixture_json
from tests.test_render import assert_golden

SOURCES = FIXTURES / "sources"
FIRING = SOURCES / "grafana-webhook-firing.json"
RESOLVED = SOURCES / "grafana-webhook-resolved.constructed.json"
NOW = datetime(2021, 10, 12, 8, 30, 0, tzinfo=UTC)  # half an hour after the fixture's alerts

CONFIG = """
timezone: Asia/Shanghai
targets:
  ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
inputs:
  grafana: {type: grafana, path: /grafana}
  grafana-split: {type: grafana, path: /grafana-split, split: true}
rules:
  - {name: md, inputs: [grafana, grafana-split], targets: [ops], match: {msg: md}}
  - {name: text, inputs: [grafana, grafana-split], targets: [ops], msgtype: text}
"""


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def with_links_and_value_string() -> dict[str, Any]:
    """The firing sample as a rule on a dashboard panel with screenshots sends it, its values
    given as Grafana 9 gave them (`valueString` only)."""
    body = load(FIRING)
    body["alerts"] = body["alerts"][:1]
    alert = body["alerts"][0]
    del alert["values"]
    alert["valueString"] = "[ var='B' labels={zone=us-1} value=44.23943737541908 ]"
    alert["dashboardURL"] = "https://play.grafana.org/d/mem?orgId=1"
    alert["panelURL"] = "https://play.grafana.org/d/mem?orgId=1&viewPanel=2"
    alert["imageURL"] = "https://play.grafana.org/render/mem.png"
    return body


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config: Config = compile_yaml(tmp_path_factory.mktemp("grafana"), CONFIG)
    return config


def spec(config: Config, split: bool = False) -> HttpInput:
    return config.http_inputs()["grafana-split" if split else "grafana"]


def rule(config: Config, name: str) -> Any:
    return next(r for r in config.rules if r.name == name)


# -- events: how many, their status and identity -----------------------------------------------


def test_one_event_per_notification_identified_by_its_group_key(config: Config) -> None:
    body = load(FIRING)
    [event] = parse_grafana(body, spec(config), NOW)
    assert event.kind == "grafana" and event.status == "firing"
    assert event.labels == {"team": "blue"}  # commonLabels: what rules match on
    assert event.fingerprint == hashlib.sha256(b"{}:{}").hexdigest()[:16]
    assert [a.fingerprint for a in event.alerts] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    assert [a.status for a in event.alerts] == ["firing", "firing"]


def test_split_gives_one_event_per_alert_identified_by_grafanas_fingerprint(
    config: Config,
) -> None:
    events = parse_grafana(load(FIRING), spec(config, split=True), NOW)
    assert [(e.fingerprint, e.status, e.labels["alertname"]) for e in events] == [
        ("c6eadffa33fcdf37", "firing", "High memory usage"),
        ("bc97ff14869b13e3", "firing", "High CPU usage"),
    ]


def test_resolved_notification_and_its_alert_are_resolved(config: Config) -> None:
    [event] = parse_grafana(load(RESOLVED), spec(config), NOW)
    assert event.status == "resolved"
    assert [a.status for a in event.alerts] == ["resolved"]
    # The same group as the firing notification: the notification log and `ack` see one alert.
    assert event.fingerprint == parse_grafana(load(FIRING), spec(config), NOW)[0].fingerprint
    [alert] = parse_grafana(load(RESOLVED), spec(config, split=True), NOW)
    assert (alert.status, alert.fingerprint) == ("resolved", "c6eadffa33fcdf37")


def test_a_mixed_notification_keeps_each_alerts_status(config: Config) -> None:
    body = load(FIRING)
    body["alerts"][1]["status"] = "resolved"
    [event] = parse_grafana(body, spec(config), NOW)
    assert event.status == "firing"
    assert [a.status for a in event.alerts] == ["firing", "resolved"]
    events = parse_grafana(body, spec(config, split=True), NOW)
    assert [e.status for e in events] == ["firing", "resolved"]


def test_grafanas_fields_of_an_alert_are_kept_and_survive_the_store(config: Config) -> None:
    [event] = parse_grafana(with_links_and_value_string(), spec(config), NOW)
    extras = dict(event.alerts[0].extras)
    assert extras == {
        "dashboardURL": "https://play.grafana.org/d/mem?orgId=1",
        "panelURL": "https://play.grafana.org/d/mem?orgId=1&viewPanel=2",
        "silenceURL": load(FIRING)["alerts"][0]["silenceURL"],
        "imageURL": "https://play.grafana.org/render/mem.png",
        "values": {},
        "valueString": "[ var='B' labels={zone=us-1} value=44.23943737541908 ]",
    }
    assert event_from_json(event_to_json(event)) == event


def test_an_alertmanager_alert_is_stored_as_before() -> None:
    spec_am = HttpInput(name="am", type="alertmanager", path="/am", token=None, max_body_bytes=99)
    [event] = parse_notification(fixture_json("firing.json"), spec_am, NOW)
    assert "extras" not in event_to_json(event)  # rows without Grafana's fields are unchanged
    assert event_from_json(event_to_json(event)) == event


# -- what templates read -----------------------------------------------------------------------


def test_context_offers_exactly_the_declared_variables(config: Config) -> None:
    [event] = parse_grafana(load(FIRING), spec(config), NOW)
    context = template_context(event, rule(config, "md"), NOW)
    assert set(context) == COMMON_VARIABLES | GRAFANA_VARIABLES
    assert (context["title"], context["state"], context["orgId"]) == (
        "[FIRING:2]  (blue)",
        "alerting",
        1,
    )
    assert context["message"].startswith("**Firing**")
    assert context["externalURL"] == "https://play.grafana.org/"
    assert (context["receiver"], context["groupKey"]) == ("My Super Webhook", "{}:{}")
    assert context["commonLabels"] == {"team": "blue"}
    first = context["alerts"][0]
    # Grafana's own silence link, not one made for Alertmanager's page from externalURL.
    assert first["silenceURL"] == load(FIRING)["alerts"][0]["silenceURL"]
    assert first["values"] == {"B": 44.23943737541908, "C": 1}
    assert first["valueString"] == "" and first["dashboardURL"] == ""
    assert first["generatorURL"] == "https://play.grafana.org/alerting/1afz29v7z/edit"


def test_fields_a_body_lacks_read_as_grafanas_zero_values(config: Config) -> None:
    body = load(FIRING)
    for name in ("title", "state", "message", "orgId"):
        del body[name]
    for name in ("silenceURL", "dashboardURL", "panelURL", "values"):
        del body["alerts"][0][name]
    [event] = parse_grafana(body, spec(config), NOW)
    context = template_context(event, rule(config, "md"), NOW)
    assert [context[n] for n in ("title", "state", "message", "orgId")] == ["", "", "", 0]
    first = context["alerts"][0]
    assert [first[n] for n in ("silenceURL", "dashboardURL", "panelURL", "imageURL")] == [""] * 4
    assert first["values"] == {} and first["valueString"] == ""
    assert render(rule(config, "md"), event, NOW).error is None


@pytest.mark.parametrize(
    ("inputs", "template", "problem"),
    [
        ("[grafana]", "{{ title }} {{ state }} {{ message }} {{ orgId }} {{ externalURL }}", None),
        ("[grafana, am]", "{{ externalURL }} {{ commonLabels }}", None),
        (
            "[grafana, am]",
            "{{ title }}",
            'template uses "title", which only Grafana inputs have'
            " (list only grafana inputs in the rule's inputs)",
        ),
        (
            "[hook]",
            "{{ externalURL }}",
            'template uses "externalURL", which only Alertmanager and Grafana inputs have'
            " (list only alertmanager or grafana inputs in the rule's inputs)",
        ),
    ],
)
def test_check_knows_which_inputs_offer_grafanas_variables(
    tmp_path: Path, inputs: str, template: str, problem: str | None
) -> None:
    text = f"""
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}}
inputs:
  grafana: {{type: grafana, path: /grafana}}
  am: {{type: alertmanager, path: /am}}
  hook: {{type: webhook, path: /hook}}
rules:
  - {{name: r, inputs: {inputs}, targets: [ops], template: {json.dumps(template)}}}
"""
    if problem is None:
        compile_yaml(tmp_path, text)
        return
    with pytest.raises(ConfigError) as caught:
        compile_yaml(tmp_path, text)
    assert [p.message + f" ({p.hint})" for p in caught.value.problems] == [problem]


def test_a_rule_fed_only_by_grafana_passes_every_notification(config: Config) -> None:
    # Grafana's notification policy decides repeats (its repeat_interval), as Alertmanager does.
    assert rule(config, "md").repeat_interval == 0.0


# -- golden renders of the bundled templates ---------------------------------------------------

GOLDEN: dict[str, tuple[str, bool, Callable[[], dict[str, Any]]]] = {
    # case -> (rule, split, body); a split case's file holds the messages of each alert in turn
    "grafana-firing.md": ("md", False, lambda: load(FIRING)),
    "grafana-firing.txt": ("text", False, lambda: load(FIRING)),
    "grafana-firing-split.md": ("md", True, lambda: load(FIRING)),
    "grafana-firing-split.txt": ("text", True, lambda: load(FIRING)),
    "grafana-resolved.md": ("md", False, lambda: load(RESOLVED)),
    "grafana-resolved.txt": ("text", False, lambda: load(RESOLVED)),
    "grafana-resolved-split.md": ("md", True, lambda: load(RESOLVED)),
    "grafana-resolved-split.txt": ("text", True, lambda: load(RESOLVED)),
    "grafana-links.md": ("md", False, with_links_and_value_string),
    "grafana-links.txt": ("text", False, with_links_and_value_string),
}


@pytest.fixture(scope="module", params=LOCALES)
def config_in(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The config in each locale (the golden files of both)."""
    text = f"{CONFIG}locale: {request.param}\n"
    config: Config = compile_yaml(tmp_path_factory.mktemp("grafana"), text)
    return config


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_bundled_templates_match_golden_files(config_in: Config, case: str) -> None:
    config = config_in
    rule_name, split, body = GOLDEN[case]
    events = parse_grafana(body(), spec(config, split), NOW)
    shown: list[tuple[str, str]] = []
    for event in events:
        rendered = render(rule(config, rule_name), event, NOW)
        assert rendered.error is None
        shown.append((rendered.message.title, rendered.message.text))
    # One file per case: the messages of a split notification follow each other.
    title = shown[0][0]
    text = "\n\n".join(
        [shown[0][1]] + [f"======== title: {t}\n\n{body_}" for t, body_ in shown[1:]]
    )
    assert_golden(f"{config.locale}/{case}", title, text)


def test_the_default_dispatcher_renders_grafanas_template(tmp_path: Path) -> None:
    """A rule fed by inputs of several kinds takes the bundled dispatcher: it must know Grafana."""
    config = compile_yaml(
        tmp_path,
        CONFIG.replace(
            "  grafana-split:", "  hook: {type: webhook, path: /hook}\n  grafana-split:", 1
        )
        + "  - {name: mixed, inputs: [grafana, hook], targets: [ops]}\n",
    )
    [event] = parse_grafana(with_links_and_value_string(), spec(config), NOW)
    mixed = render(rule(config, "mixed"), event, NOW)
    assert mixed.error is None
    assert mixed.message.text == render(rule(config, "md"), event, NOW).message.text


# -- bodies that are not Grafana's: a 400 that says what is wrong ------------------------------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(body: dict[str, Any]) -> Any:
        holder: Any = body
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
        return body

    return change


REFUSED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("not an object", lambda b: [b], "the body must be a JSON object (Grafana webhook payload)"),
    (
        "Alertmanager's",
        lambda b: fixture_json("firing.json"),
        'payload version unsupported: \'4\': expected "1" (version "4" is Alertmanager\'s'
        " webhook: an input of type: alertmanager takes it)",
    ),
    (
        "no version (legacy alerting, a custom payload)",
        lambda b: {k: v for k, v in b.items() if k != "version"},
        'payload version missing: expected "1" (Grafana\'s unified alerting webhook contact'
        " point, without a custom payload)",
    ),
    ("version 2", _set(("version",), "2"), "payload version unsupported: '2': expected \"1\""),
    ("version as a number", _set(("version",), 1), "payload version unsupported: '1'"),
    ("alerts not a list", _set(("alerts",), {}), 'missing "alerts": expected a list of alerts'),
    ("alerts empty", _set(("alerts",), []), '"alerts" is empty'),
    ("an alert not an object", _set(("alerts", 1), "x"), "alerts[1] must be an object"),
    ("bad status", _set(("status",), "ok"), 'status must be "firing" or "resolved"'),
    ("bad alert status", _set(("alerts", 0, "status"), 1), "alerts[0].status must be"),
    ("title", _set(("title",), ["x"]), "title must be a string"),
    ("state", _set(("state",), 0), "state must be a string"),
    ("message", _set(("message",), {}), "message must be a string"),
    ("orgId", _set(("orgId",), "1"), "orgId must be an integer"),
    ("orgId true", _set(("orgId",), True), "orgId must be an integer"),
    ("values", _set(("alerts", 0, "values"), [1]), "alerts[0].values must be an object"),
    ("a value", _set(("alerts", 0, "values", "B"), "44"), "alerts[0].values.B must be a number"),
    ("a value true", _set(("alerts", 0, "values", "C"), True), "alerts[0].values.C must be"),
    ("valueString", _set(("alerts", 1, "valueString"), 3), "alerts[1].valueString must be"),
    ("panelURL", _set(("alerts", 0, "panelURL"), 3), "alerts[0].panelURL must be a string"),
    ("imageURL", _set(("alerts", 0, "imageURL"), {}), "alerts[0].imageURL must be a string"),
    ("labels", _set(("alerts", 0, "labels", "zone"), 1), "alerts[0].labels.zone must be"),
    ("startsAt", _set(("alerts", 0, "startsAt"), "noon"), "alerts[0].startsAt is not an RFC"),
    ("commonLabels", _set(("commonLabels",), []), "commonLabels must be an object of strings"),
]


@pytest.mark.parametrize(("case", "change", "says"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_a_body_that_is_not_grafanas_is_refused_naming_what_is_wrong(
    config: Config, case: str, change: Callable[[dict[str, Any]], Any], says: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_grafana(change(load(FIRING)), spec(config), NOW)
    assert caught.value.status == 400
    assert says in str(caught.value)


def test_values_may_be_missing_or_empty(config: Config) -> None:
    body = load(FIRING)
    body["alerts"][0]["values"] = None  # Go's nil map
    body["alerts"][1]["values"] = {"B": None, "C": 0.5}
    events: list[Event] = parse_grafana(body, spec(config), NOW)
    assert [dict(a.extras)["values"] for a in events[0].alerts] == [{}, {"B": None, "C": 0.5}]
    assert render(rule(config, "md"), events[0], NOW).error is None


def test_grafanas_body_at_an_alertmanager_input_is_told_to_use_type_grafana() -> None:
    spec_am = HttpInput(name="am", type="alertmanager", path="/am", token=None, max_body_bytes=99)
    with pytest.raises(InputError) as caught:
        parse_notification(copy.deepcopy(load(FIRING)), spec_am, NOW)
    assert caught.value.status == 400
    assert str(caught.value) == (
        "unsupported payload version '1': expected \"4\""
        ' (version "1" is Grafana\'s webhook: an input of type: grafana takes it)'
    )


# -- the commands ------------------------------------------------------------------------------


def test_check_and_render_take_a_grafana_input(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\n{CONFIG}", "utf-8")
    checked = bridge_cli("check", "-c", str(path))
    assert checked.returncode == 0, checked.stderr
    result = bridge_cli(
        "render", "-c", str(path), "--input", "grafana-split", "--payload", str(FIRING)
    )
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("# rule ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["text -> target ops (robot)"] * 2
    texts = [json.loads(b.split("\n", 1)[1])["text"]["content"] for b in blocks]
    assert "High memory usage" in texts[0] and "数值: B=44.2394, C=1" in texts[0]
    assert "High CPU usage" in texts[1]
    refused = bridge_cli(
        "render",
        "-c",
        str(path),
        "--input",
        "grafana",
        "--payload",
        str(FIXTURES / "alertmanager" / "firing.json"),
    )
    assert refused.returncode == 1
    assert "would answer 400: payload version unsupported: '4'" in refused.stderr
