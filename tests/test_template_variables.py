"""The config's check of the variables an inline template reads, where Jinja's own analysis is
wrong: a `{% block x scoped %}` inside a loop reads the loop's variable (the bundled templates'
`alert_values` and `alert_links` read `a`), and so does a block overriding it in a template
that extends one. Their text written inline (or tried in the console's playground) compiles;
an unknown name in such a block is still refused, as is a loop variable read by a block that
is not scoped (Jinja does not hand it in)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.config.resources import data_dir
from bridge.errors import ConfigError
from tests.harness import compile_yaml

BUNDLED = ["alertmanager.md.j2", "alertmanager.txt.j2", "grafana.md.j2", "grafana.txt.j2"]


def config_with(template: str, kind: str = "alertmanager") -> str:
    return yaml.safe_dump(
        {
            "targets": {
                "ops": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?access_token=t"}
            },
            "inputs": {"in": {"type": kind, "path": "/in"}},
            "rules": [{"name": "r", "targets": ["ops"], "template": template}],
        }
    )


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_templates_text_written_inline_compiles(name: str, tmp_path: Path) -> None:
    text = (data_dir("templates") / name).read_text("utf-8")
    kind = "grafana" if name.startswith("grafana") else "alertmanager"
    config = compile_yaml(tmp_path, config_with(text, kind))
    assert config.rules[0].name == "r"


@pytest.mark.parametrize(
    ("template", "unknown"),
    [
        (
            "{% for a in alerts %}{% block x scoped %}{{ a.labels }}{{ nope }}{% endblock %}"
            "{% endfor %}",
            "nope",
        ),
        ("{% for a in alerts %}{% block x %}{{ a.labels }}{% endblock %}{% endfor %}", "a"),
        (
            "{% extends 'alertmanager.md.j2' %}{% block alert_values %}{{ zzz }}{% endblock %}",
            "zzz",
        ),
    ],
)
def test_an_unknown_name_in_a_block_is_still_refused(
    template: str, unknown: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        compile_yaml(tmp_path, config_with(template))
    assert f'unknown variable "{unknown}"' in str(refused.value)
