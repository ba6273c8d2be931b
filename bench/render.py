"""Render benchmark: what the bundled templates cost, and what a hostile template costs now that
renders are bounded (bridge/template_bounds.py).

    cd /work/main && python -m bench.render [--repeat 50]

- CPU per render (process time, median of `--repeat`) of the bundled Alertmanager markdown
  template for a notification of 1, 3 and 300 alerts;
- for each hostile template (the issue's cases): the wall time until the plain fallback and the
  peak RSS of a fresh process that compiles and renders it (each in its own process, so the
  figure is its own). Unbounded, these took 45 s of CPU, gigabytes, or `check` 13 s and 2.9 GB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import ROOT, compile_yaml
from tests.test_render import CONFIG, NOW
from tests.test_render_groups import big_notification

RESULTS = Path(__file__).parent / "results" / "render.json"
HOSTILE = {
    "nested range(100000) loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "lipsum(10000000)": "{{ lipsum(10000000) }}",
    "'x' * 10**9": "{{ 'x' * 10**9 }}",
    "doubling with ~": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}"
    ),
    "'%1000000000s' % 'x'": "{{ '%1000000000s' % 'x' }}",
    "center(10**9)": "{{ 'x' | center(10**9) }}",
    "output flood": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
}
ONE_CASE = """
import json, re, sys, tempfile, time
from pathlib import Path
from bridge.inputs.alertmanager import parse_notification
from bridge.pipeline.render import render
from tests.harness import compile_yaml, fixture_json
from tests.test_render import CONFIG, NOW
template = sys.argv[1]
rule = "- {name: am-md, inputs: [am], targets: [ops], match: {msg: md}}"
started = time.monotonic()
config = compile_yaml(Path(tempfile.mkdtemp()), CONFIG.replace(
    rule, f"- {{name: am-md, inputs: [am], targets: [ops], template: {template!r}}}"))
compiled = time.monotonic()
event = parse_notification(fixture_json("firing.json"), config.http_inputs()["am"], NOW)[0]
rendered = render(next(r for r in config.rules if r.name == "am-md"), event, NOW)
done = time.monotonic()
print(json.dumps({
    "compile_s": round(compiled - started, 3),
    "render_s": round(done - compiled, 3),
    "fallback": rendered.message.fallback,
    "error": (rendered.error or "")[:100],
    # VmHWM: ru_maxrss would include the launching process's size (kept across exec).
    "peak_rss_mb": int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    // 1024,
}))
"""


def bundled(repeat: int) -> dict[str, float]:
    from bridge.inputs.alertmanager import parse_notification
    from bridge.pipeline.render import render

    config = compile_yaml(Path(tempfile.mkdtemp(prefix="bench-render-")), CONFIG)
    rule = next(r for r in config.rules if r.name == "am-md")
    out = {}
    for hosts in (1, 3, 300):
        event = parse_notification(big_notification(hosts), config.http_inputs()["am"], NOW)[0]
        times = []
        for _ in range(repeat):
            started = time.process_time()
            render(rule, event, NOW)
            times.append(time.process_time() - started)
        out[f"{hosts}_alerts_ms"] = round(statistics.median(times) * 1000, 2)
    return out


def hostile() -> dict[str, dict[str, object]]:
    out = {}
    for name, template in HOSTILE.items():
        result = subprocess.run(
            [sys.executable, "-c", ONE_CASE, template],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        out[name] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    results = {"bundled_cpu_per_render": bundled(args.repeat), "hostile": hostile()}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2), "utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
