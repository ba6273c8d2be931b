"""Generated templates and events for the renderer (hypothesis).

Templates come from a small grammar of Jinja constructs, hostile ones included (huge numbers in
every numeric slot, nested loops, doubling, macros, width filters, str methods, lipsum); events
carry generated labels, annotations and alert lists. Whatever the mix:

- compiling never raises anything but a syntax error, and never computes a hostile constant;
- render() never raises: it returns either the rule's message, within the output bound, or the
  plain fallback with the reason;
- every render finishes (a deadline exceeded is an outcome, never asserted as a time);
- every robot body of the result fits DingTalk's 20,000 bytes.

The bounds are made small here (50 ms, 64 KiB) so that hostile examples end quickly; they are the
same code paths as the defaults. Example counts are modest, so the suite runs in seconds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from bridge.config.model import Config, Rule
from bridge.config.template_bounds import RenderLimits
from bridge.config.templating import make_environment
from bridge.dingtalk.robot import ROBOT_MAX_BYTES, robot_bodies
from bridge.dingtalk.sizing import encode
from bridge.model import Alert, Event, Message
from bridge.pipeline.render import render
from tests.harness import compile_yaml
from tests.test_render import CONFIG, NOW

LIMITS = RenderLimits(
    seconds=0.05, output_bytes=64 << 10, value_units=256 << 10, total_units=1 << 21
)
ENV = make_environment([], ZoneInfo("Asia/Shanghai"), LIMITS)
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the template grammar ----------------------------------------------------------------------

_SMALL = st.integers(-3, 40)
NUMBERS = st.one_of(  # mostly ordinary numbers, a hostile one in about one slot in four
    _SMALL,
    _SMALL,
    _SMALL,
    st.sampled_from([1000, 10**5, 10**6, 10**9, 2**40, 10**18]),
)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
STRINGS = TEXT.map(repr)
VARIABLES = st.sampled_from(
    [
        "status",
        "labels",
        "labels.alertname",
        "alerts",
        "firing",
        "resolved",
        "alerts[0].labels",
        "annotations",
        "short_id",
        "now",
        "received_at",
        "input",
        "commonLabels",
        "payload",
        "i",
        "x",
    ]
)
FILTERS = st.one_of(
    st.sampled_from(
        [
            "upper",
            "length",
            "list",
            "string",
            "tojson",
            "md_escape",
            "kv",
            "first",
            "join",
            "join(',')",
            "unique",
            "sort",
            "dictsort",
            "reverse",
            "trim",
            "wordcount",
            "default('d')",
            "int",
            "abs",
            "localtime",
            "since",
            "urlencode",
        ]
    ),
    NUMBERS.map(lambda n: f"center({n})"),
    NUMBERS.map(lambda n: f"indent({n})"),
    NUMBERS.map(lambda n: f"truncate_bytes({n})"),
    NUMBERS.map(lambda n: f"batch({n}, 'f')"),
    NUMBERS.map(lambda n: f"slice({n}, 'f')"),
    NUMBERS.map(lambda n: f"wordwrap({max(n, 1)})"),
    NUMBERS.map(lambda n: f"tojson(indent={n})"),
    NUMBERS.map(lambda n: f"format({n})"),
    st.tuples(STRINGS, STRINGS).map(lambda t: f"replace({t[0]}, {t[1]})"),
)
OPERATORS = st.sampled_from(["*", "**", "%", "+", "~", "//", "-", "in"])


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(NUMBERS.map(str), STRINGS, VARIABLES)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, OPERATORS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, FILTERS).map(lambda t: f"({t[0]} | {t[1]})"),
            st.tuples(inner, NUMBERS).map(lambda t: f"{t[0]}.ljust({t[1]})"),
            st.tuples(inner, STRINGS, inner).map(lambda t: f"{t[0]}.replace({t[1]}, {t[2]})"),
            NUMBERS.map(lambda n: f"range({n})"),
            NUMBERS.map(lambda n: f"lipsum({n})"),
            st.tuples(STRINGS, inner).map(lambda t: f"{t[0]}.join({t[1]})"),
            inner.map(lambda e: f"'{{0}}{{0}}{{0:>9}}'.format({e})"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        )

    return st.recursive(leaves, extend, max_leaves=6)


EXPRESSIONS = _expressions()
LOOP_NAMES = st.sampled_from(["i", "x"])
PLAIN = TEXT.filter(lambda t: not any(c in t for c in "{}%#"))


def _templates() -> st.SearchStrategy[str]:
    leaves = st.one_of(EXPRESSIONS.map(lambda e: "{{ " + e + " }}"), PLAIN)
    bodies = st.lists  # alias for brevity below

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        block = bodies(inner, max_size=3).map("".join)
        return st.one_of(
            st.tuples(LOOP_NAMES, EXPRESSIONS, block).map(
                lambda t: f"{{% for {t[0]} in {t[1]} %}}{t[2]}{{% endfor %}}"
            ),
            st.tuples(EXPRESSIONS, block, block).map(
                lambda t: f"{{% if {t[0]} %}}{t[1]}{{% else %}}{t[2]}{{% endif %}}"
            ),
            st.tuples(LOOP_NAMES, EXPRESSIONS, block).map(
                lambda t: f"{{% set {t[0]} = {t[1]} %}}{t[2]}"
            ),
            st.tuples(block, EXPRESSIONS, EXPRESSIONS).map(
                lambda t: (
                    "{% macro m(x) %}" + t[0] + "{{ x }}{{ x }}{% endmacro %}"
                    f"{{{{ m({t[1]}) }}}}{{{{ m(m({t[2]})) }}}}"
                )
            ),
            st.tuples(NUMBERS, NUMBERS, block).map(
                lambda t: (
                    f"{{% for i in range({t[0]}) %}}{{% for x in range({t[1]}) %}}{t[2]}"
                    "{% endfor %}{% endfor %}"
                )
            ),
            st.tuples(EXPRESSIONS, EXPRESSIONS).map(
                lambda t: (
                    "{% set ns = namespace(s='', l=[]) %}"
                    f"{{% for i in {t[0]} %}}{{% set ns.s = ns.s ~ {t[1]} ~ ns.s %}}"
                    "{% set _ = ns.l.append(ns.s) %}{% endfor %}{{ ns.s }}{{ ns.l }}"
                )
            ),
        )

    return st.recursive(leaves, extend, max_leaves=8)


TEMPLATES = _templates()

# -- generated events --------------------------------------------------------------------------

LABEL_NAMES = st.sampled_from(["alertname", "instance", "job", "severity", "team", "a_b", "*x*"])
LABELS = st.dictionaries(LABEL_NAMES, TEXT, max_size=5)
TIMES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
HEX16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
ALERTS = st.builds(
    Alert,
    status=st.sampled_from(["firing", "resolved"]),
    labels=LABELS,
    annotations=st.dictionaries(st.sampled_from(["summary", "description"]), TEXT, max_size=2),
    starts_at=TIMES,
    ends_at=TIMES,
    generator_url=st.sampled_from(["", "http://prometheus/graph?g0.expr=up"]),
    fingerprint=HEX16,
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    alerts = tuple(draw(st.lists(ALERTS, max_size=draw(st.sampled_from([3, 40, 300])))))
    common = draw(LABELS)
    kind = draw(st.sampled_from(["alertmanager", "webhook"]))
    payload = {
        "receiver": "bridges",
        "status": "firing",
        "externalURL": draw(st.sampled_from(["", "http://am:9093"])),
        "groupLabels": {k: v for k, v in common.items() if k == "alertname"},
        "commonLabels": common,
        "commonAnnotations": draw(st.dictionaries(st.sampled_from(["summary"]), TEXT, max_size=1)),
        "groupKey": "{}:{}",
        "truncatedAlerts": draw(st.integers(0, 5)),
    }
    return Event(
        input="am",
        kind=kind,
        status=draw(st.sampled_from(["firing", "resolved"])),
        labels=common,
        annotations=draw(st.dictionaries(st.sampled_from(["summary"]), TEXT, max_size=1)),
        fingerprint=draw(HEX16),
        received_at=NOW - timedelta(seconds=draw(st.integers(0, 10**6))),
        alerts=alerts,
        payload=payload,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config: Config = compile_yaml(tmp_path_factory.mktemp("hypothesis"), CONFIG)
    return config


def _rule(config: Config, name: str) -> Rule:
    return next(r for r in config.rules if r.name == name)


def _assert_sendable(message: Message) -> None:
    for body in robot_bodies(message):
        assert len(encode(body)) <= ROBOT_MAX_BYTES


@SETTINGS
@given(
    source=TEMPLATES,
    title=st.one_of(st.just("[{{ status }}] {{ input }}"), TEMPLATES),
    event=events(),
)
def test_generated_templates_render_or_fall_back(
    config: Config, source: str, title: str, event: Event
) -> None:
    try:
        body_template = ENV.from_string(source)
        title_template = ENV.from_string(title)
    except jinja2.TemplateSyntaxError:
        assume(False)
        return
    rule = replace(_rule(config, "am-md"), body=body_template, title=title_template)
    rendered = render(rule, event, NOW)  # must not raise
    message = rendered.message
    note(f"outcome: {(rendered.error or 'rendered')[:40]}")
    if rendered.error and "limit:" in rendered.error:
        note(f"bound: {rendered.error.split('limit:')[0].split(':')[-1].strip()}")
    if rendered.error is None:
        assert not message.fallback
        size = len((message.text + message.title).encode("utf-8", "replace"))
        assert size <= LIMITS.output_bytes
    else:
        assert message.fallback
        assert rendered.error.split(":", 1)[0]  # names what went wrong
    _assert_sendable(message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), rule=st.sampled_from(["am-md", "am-text", "hook-md", "hook-text"]))
def test_bundled_templates_render_every_generated_event(
    config: Config, event: Event, rule: str
) -> None:
    """The bundled templates never need the fallback, and name every alert."""
    bundled = _rule(config, rule)
    # Each bundled template is chosen for its input's kind (compile.py's _body_template).
    event = replace(event, kind="webhook" if rule.startswith("hook") else "alertmanager")
    rendered = render(bundled, event, NOW)
    assert rendered.error is None, rendered.error
    _assert_sendable(rendered.message)
    if event.kind == "alertmanager":
        icons = ("🔴", "🟢") if rule.endswith("md") else ("●", "○")
        shown = sum(rendered.message.text.count(icon) for icon in icons)
        assert shown >= len(event.alerts)  # one entry per alert, none cut


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(TEXT.map(lambda t: t * 20), min_size=1, max_size=2000),
    msgtype=st.sampled_from(["text", "markdown"]),
)
def test_parts_keep_every_line(lines: list[str], msgtype: str) -> None:
    """Split into parts, a message keeps each of its (shorter than a part) lines whole."""
    text = "\n".join(lines)
    message = Message(msgtype, "T", text)  # type: ignore[arg-type]
    bodies = robot_bodies(message)
    texts = [b["text"]["content"] if msgtype == "text" else b["markdown"]["text"] for b in bodies]
    for body in bodies:
        assert len(encode(body)) <= ROBOT_MAX_BYTES
    joined = "\n".join(texts)
    for line in lines:
        assert line.strip("\n") in joined


def test_the_bounds_stop_hostile_members_of_the_grammar(config: Config) -> None:
    """Members of the grammar above that only the bounds stop, each ending in the fallback."""
    members = [
        "{% for i in range(100000) %}{% for x in range(100000) %}{% endfor %}{% endfor %}",
        "{{ ('a' * 1000000000) }}",
        "{{ lipsum(1000000000) }}",
        "{{ ('x' | center(1000000000)) }}",
        "{{ '{0}{0}{0:>9}'.format(('x' | center(100000))) }}",
    ]
    event = Event("am", "alertmanager", "firing", {}, {}, "0" * 16, NOW)
    for source in members:
        rule = replace(_rule(config, "am-md"), body=ENV.from_string(source))
        rendered = render(rule, event, NOW)
        assert rendered.message.fallback, source
        assert rendered.error is not None and "TemplateLimitError" in rendered.error, source
