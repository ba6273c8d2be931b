"""Templates are bounded in time, output and memory: a render over a bound sends the plain
fallback with the reason, `check` compiles hostile templates without computing them, and the
pieces (size estimates, the budget) do what they say."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.config.model import Config
from bridge.config.template_bounds import (
    Budget,
    RenderLimits,
    TemplateLimitError,
    binop_size,
    deep_size,
    format_size,
    percent_size,
)
from bridge.config.templating import make_environment
from bridge.inputs.alertmanager import parse_notification
from bridge.pipeline.render import render
from tests.harness import ROOT, compile_yaml, fixture_json
from tests.test_render import CONFIG, NOW

# Each would take seconds to hours of CPU or gigabytes of memory unbounded; the kind of bound
# that must stop it comes second.
HOSTILE = {
    "nested range loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "time",
    ),
    "nested loops over a string": (
        "{% for c in 'x' * 100000 %}{% for d in 'x' * 100000 %}{% endfor %}{% endfor %}",
        "time",
    ),
    "exponential macro recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}",
        "time",
    ),
    "lipsum": ("{{ lipsum(10000000) }}", "size"),
    "string times 10**9": ("{{ 'x' * 10**9 }}", "size"),
    "list times n": ("{{ ['x'] * 10**9 }}", "size"),
    "huge power": ("{{ 2 ** (2 ** 40) }}", "size"),
    "percent width": ("{{ '%1000000000s' % 'x' }}", "size"),
    "percent star width": ("{{ '%*s' % (1000000000, 'x') }}", "size"),
    "format width": ("{{ '{:>1000000000}'.format('x') }}", "size"),
    "format nested width": ("{{ '{:>{w}}'.format('x', w=1000000000) }}", "size"),
    "center": ("{{ 'x' | center(1000000000) }}", "size"),
    "indent": ("{{ 'a\nb' | indent(1000000000) }}", "size"),
    "wordwrap": ("{{ 'x y z' | wordwrap(1, wrapstring='y' * 1000000) }}", "size"),
    "replace filter": ("{{ ('x' * 100000) | replace('x', 'y' * 1000) }}", "size"),
    "format filter": ("{{ '%1000000000d' | format(1) }}", "size"),
    "ljust": ("{{ 'x'.ljust(1000000000) }}", "size"),
    "replace method": ("{{ ('x' * 1000000).replace('x', 'y' * 1000) }}", "size"),
    "translate": ("{{ ('ab' * 100000).translate({97: 'z' * 100000}) }}", "size"),
    "to_bytes": ("{{ (1).to_bytes(1000000000, 'big') }}", "size"),
    "expandtabs": ("{{ ('\t' * 100000).expandtabs(100000) }}", "size"),
    "strftime": ("{{ now.strftime('%c' * 1000000) }}", "size"),
    "doubling with ~": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "size",
    ),
    "doubling with +": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "size",
    ),
    "doubling through a macro": (
        "{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='x') %}"
        "{% for i in range(64) %}{% set ns.s = d(ns.s) %}{% endfor %}",
        "size",
    ),
    "doubling a list in place": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set _ = ns.l.extend(ns.l) %}"
        "{% endfor %}",
        "size",
    ),
    "printing many references to one big string": (
        "{% set ns = namespace(l=[]) %}{% set big = 'x' * 1000000 %}"
        "{% for i in range(1000) %}{% set _ = ns.l.append(big) %}{% endfor %}{{ ns.l }}",
        "output",
    ),
    "joining many references": (
        "{% set big = 'x' * 1000000 %}{{ range(1000) | map('replace', '', big) | join }}",
        "size",
    ),
    "join method over references": (
        "{% set big = 'x' * 1000000 %}{{ ','.join([big] * 1000) }}",
        "size",
    ),
    "batch fill": ("{{ [1] | batch(1000000000, 'x') | list }}", "size"),
    "slice fill": ("{{ [1] | slice(100000000, 'x') | list }}", "size"),
    "tojson indent": ("{{ {'a': [1, [2, [3]]]} | tojson(indent=100000) }}", "size"),
    "output": ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output"),
    "many large values": (
        "{% for i in range(1000) %}{% set s = ('x' * 4000000) ~ i %}{% endfor %}",
        "size",
    ),
}


def _config(tmp_path: Path, template: str, limits: str = "") -> Config:
    rule = "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}"
    config: Config = compile_yaml(
        tmp_path,
        limits
        + CONFIG.replace(
            rule, f"- {{name: am-md, inputs: [am], targets: [ops], template: {template!r}}}"
        ),
    )
    return config


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_template_falls_back_with_the_bound_it_hit(tmp_path: Path, case: str) -> None:
    template, what = HOSTILE[case]
    config = _config(tmp_path, template)
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    rule = next(r for r in config.rules if r.name == "am-md")
    rendered = render(rule, event, NOW)
    assert rendered.message.fallback
    assert rendered.error is not None and rendered.error.startswith("TemplateLimitError"), (
        rendered.error
    )
    assert f"TemplateLimitError: {what} limit: " in rendered.error, rendered.error
    assert "DiskFull" in rendered.message.text  # the alert still goes out, plainly


ORDINARY = {
    "loop within bounds": ("{% for i in range(1000) %}{{ i }}{% endfor %}", None),
    "a moderate multiplication": ("{{ 'ab' * 3 }}", "ababab"),
    "percent": ("{{ '%05d|%-4s|' % (42, 'x') }}", "00042|x   |"),
    "format": ("[{{ '{:>4}|{}'.format('x', 1) }}]", "[   x|1]"),
    "join and replace": ("{{ ['a', 'b'] | join('-') | replace('-', '+') }}", "a+b"),
    "join method": ("{{ ','.join(['a', 'b']) }}", "a,b"),
    "concat": ("{{ 'a' ~ 1 ~ none }}", "a1None"),
    "namespace accumulation": (
        "{% set ns = namespace(l=[]) %}{% for a in alerts %}{% set _ = ns.l.append(a.status) %}"
        "{% endfor %}{{ ns.l | join(',') }}",
        "firing",
    ),
    "power": ("{{ 2 ** 10 }}", "1024"),
    "list plus list": ("{{ ([1] + [2]) | join }}", "12"),
    "center": ("[{{ 'x' | center(5) }}]", "[  x  ]"),
    "lipsum": ("{{ lipsum(1, false, 5, 6) | wordcount in [5, 6] }}", "True"),
    "macro": ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{{ m(2) }}", "<1><2>"),
    "recursive loop": (
        "{% for x in [[1, [2]], 3] recursive %}{% if x is iterable %}{{ loop(x) }}"
        "{% else %}{{ x }}{% endif %}{% endfor %}",
        "123",
    ),
    "loop variables": (
        "{% for x in 'abc' %}{{ loop.index }}{{ loop.length }}{% endfor %}",
        "132333",
    ),
}


@pytest.mark.parametrize("case", sorted(ORDINARY))
def test_ordinary_templates_are_untouched(tmp_path: Path, case: str) -> None:
    template, expected = ORDINARY[case]
    config = _config(tmp_path, template)
    event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
    rule = next(r for r in config.rules if r.name == "am-md")
    rendered = render(rule, event, NOW)
    assert rendered.error is None
    if expected is not None:
        assert rendered.message.text == expected


def test_a_message_shares_one_budget_across_its_templates(tmp_path: Path) -> None:
    """Title, body and url each stay under the output bound; together they exceed it."""
    env = make_environment(
        [], __import__("zoneinfo").ZoneInfo("UTC"), RenderLimits(output_bytes=100)
    )
    part = env.from_string("{{ 'x' * 60 }}")
    from bridge.config.template_bounds import render_budget

    assert part.render() == "x" * 60
    with pytest.raises(TemplateLimitError) as raised, render_budget(env.limits):  # type: ignore[attr-defined]
        part.render()
        part.render()
    assert raised.value.what == "output"


def test_the_deadline_is_read_from_the_budget_clock() -> None:
    now = [0.0]
    budget = Budget(RenderLimits(seconds=1.0), clock=lambda: now[0])
    for _ in range(100):
        budget.tick()  # before the deadline: nothing
    now[0] = 1.5
    with pytest.raises(TemplateLimitError) as raised:
        for _ in range(32):  # read every 32 steps
            budget.tick()
    assert raised.value.what == "time"


SIZE_CASES = [
    ("*", "ab", 3, 6),
    ("*", 3, ["x"], deep_size(["x"]) * 3),
    ("*", 3, 4, 0),
    ("+", "ab", "cd", deep_size("ab") + deep_size("cd")),
    ("%", "%10s", "x", len("%10s") + 10 + deep_size("x")),
]


@pytest.mark.parametrize(("op", "left", "right", "expected"), SIZE_CASES)
def test_binop_size(op: str, left: object, right: object, expected: int) -> None:
    assert binop_size(op, left, right) == expected


def test_size_estimates_cover_widths_and_repeats() -> None:
    assert percent_size("%(a)s%(a)s", {"a": "x" * 100}) >= 200
    assert percent_size("%*d", (10**6, 1)) >= 10**6
    assert format_size("{0}{0}{0}", ("x" * 100,), {}) >= 300
    assert format_size("{:{w}}", ("x",), {"w": 10**6}) >= 10**6
    assert deep_size(["x" * 10] * 10) >= 100
    cyclic: list[object] = []
    cyclic.append(cyclic)
    assert deep_size(cyclic, 1000) > 1000  # a cycle is "large", and measuring it ends


# VmHWM, not getrusage's ru_maxrss: Linux carries the pre-exec high-water mark into ru_maxrss,
# so a check started from a large pytest worker would report that worker's size.
CHECK_WITH_PEAK = (
    "import re, sys\n"
    "from bridge.cli.main import main\n"
    "try:\n"
    "    code = main(['check', '-c', sys.argv[1]])\n"
    "finally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    peak = re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)\n"
    "    print(f'peak-rss-kib {peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def test_check_does_not_compute_hostile_constants(tmp_path: Path) -> None:
    """Jinja folds constant expressions while compiling: `check` itself used to build
    `'x' * 4 * 10**8` (400 MB, and 2.9 GB for 10**9). Now nothing is computed at compile time."""
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            targets:
              ops: {type: robot, webhook: "http://127.0.0.1:1/robot/send?access_token=t"}
            inputs:
              am: {type: alertmanager, path: /am}
            rules:
              - name: r
                targets: [ops]
                title: "{{ 'x' | center(4 * 10**8) }}"
                template: "{{ 'x' * 4 * 10**8 }}{{ '%400000000s' % 'y' }}"
            """
        ),
        "utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-c", CHECK_WITH_PEAK, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "Traceback" not in result.stderr
    peak_mib = int(result.stderr.split("peak-rss-kib ")[1].split()[0]) // 1024
    assert peak_mib < 200, f"check peaked at {peak_mib} MiB"
