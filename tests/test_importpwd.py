"""`dingtalk-bridge import-pwd`: prometheus-webhook-dingtalk configs in, dingtalk-bridge ones out.

The real-world configs are tests/configs/pwd/*.yml (see its README); what the command writes for
each is a golden file, tests/golden/pwd/<case>.yaml (UPDATE_GOLDEN=1 to accept a change), and
must pass `check`. The pure parts (bridge/config/pwd/) are tested with tables; generated
documents must convert or be refused, never crash.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli.main import main as bridge_main
from bridge.config.pwd import gotemplates
from bridge.config.pwd.convert import (
    ConversionError,
    TemplateFile,
    TemplateGlob,
    convert,
    go_duration,
    go_listen,
)
from bridge.config.pwd.render import render
from tests.harness import ROOT

PWD = ROOT / "tests" / "configs" / "pwd"
GOLDEN = ROOT / "tests" / "golden" / "pwd"
URL = "https://oapi.dingtalk.com/robot/send?access_token="

# case -> (old config, extra arguments, what stderr must say)
CASES: dict[str, tuple[str, list[str], list[str]]] = {
    "example": (
        "example.yml",
        [],
        [
            "5 targets converted",
            "/dingtalk/webhook1/send -> robot webhook1 at oapi.dingtalk.com, signed",
            "/dingtalk/webhook_mention_all/send -> robot webhook_mention_all at"
            " oapi.dingtalk.com, unsigned, @all",
            "target webhook_legacy: used the built-in legacy look",
        ],
    ),
    "signed-mention": (
        "signed-mention.yml",
        ["--web.listen-address", "127.0.0.1:9060"],
        ["/dingtalk/oncall/send -> robot oncall at oapi.dingtalk.com, signed, @2 mobiles"],
    ),
    "signed-mention-env": (
        "signed-mention.yml",
        ["--secrets-to-env", "ENV_FILE"],
        ["read from the environment (DINGTALK_ONCALL_ACCESS_TOKEN, DINGTALK_ONCALL_SECRET)"],
    ),
    "custom-templates": (
        "custom-templates.yml",
        [],
        [
            "templates/ops.tmpl: defines ops.content, ops.title; used by ops",
            "templates/override.tmpl: defines __text_alert_list, ding.link.content (replacing"
            " the built-in __text_alert_list, ding.link.content); used by dba, legacy",
            "target legacy: used your templates __text_alert_list",
            "warning: templates: /mnt/shared/dingtalk/*.tmpl: no file found",
        ],
    ),
    "multi-default-message": (
        "multi-default-message.yml",
        [],
        [
            "target web: message text is inline Go template text",
            "target payments: message text is inline Go template text",
            "target dba: message title is inline Go template text: 'DB: {{ .CommonLabels"
            ".alertname }}'",
        ],
    ),
    "odd-keys": (
        "odd-keys.yml",
        [],
        [
            "3 targets converted",
            "warning: retries: unknown key, ignored",
            "warning: profiles: unknown key, ignored",
            "warning: targets.prod.proxy: unknown key, ignored",
            "warning: targets.prod.mention.userids: unknown key, ignored",
            "warning: targets.prod.message.color: unknown key, ignored",
            "warning: targets.removed: no http(s) url, skipped",
            "warning: targets.9lives: the old bridge refuses this name; converted anyway",
            "warning: timeout: 5 is a bare number (nanoseconds to the old bridge)",
            "warning: templates: templates/legacy.tmpl: no file found",
        ],
    ),
}


def secrets_of(text: str) -> set[str]:
    """The access tokens and signing secrets written in an old config."""
    return set(re.findall(r"access_token=([0-9a-zA-Z]+)", text)) | set(
        re.findall(r"\b(SEC[0-9a-zA-Z]+)", text)
    )


def env_file_values(path: Path) -> dict[str, str]:
    """The KEY=value lines of an env file written by --secrets-to-env (none if it is absent)."""
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class Imported:
    """import-pwd run on one case, from the fixtures' directory as an operator would."""

    case: str
    code: int
    out: Path  # the written config
    err: str
    env_file: Path

    @property
    def old_text(self) -> str:
        return (PWD / CASES[self.case][0]).read_text("utf-8")


@pytest.fixture(params=sorted(CASES))
def imported(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Imported:
    case: str = request.param
    source, extra, _ = CASES[case]
    workdir = tmp_path / "pwd"
    shutil.copytree(PWD, workdir)
    monkeypatch.chdir(workdir)
    args = ["new.env" if a == "ENV_FILE" else a for a in extra]
    code = bridge_main(["import-pwd", source, "-o", "new.yaml", *args])
    err = capsys.readouterr().err
    return Imported(case, code, workdir / "new.yaml", err, workdir / "new.env")


def test_each_old_config_converts_to_its_golden_file_which_passes_check(
    imported: Imported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert imported.code == 0, imported.err
    text = imported.out.read_text("utf-8")
    golden = GOLDEN / f"{imported.case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, "utf-8")
    assert text == golden.read_text("utf-8"), f"differs from {golden}; UPDATE_GOLDEN=1 to accept"
    for said in CASES[imported.case][2]:
        assert said in imported.err
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    for name, value in env_file_values(imported.env_file).items():
        monkeypatch.setenv(name, value)
    assert bridge_main(["check", "-c", str(imported.out)]) == 0


def test_every_old_path_is_served_by_an_input_whose_rule_reaches_its_robot(
    imported: Imported,
) -> None:
    old = yaml.safe_load(imported.old_text)
    new = yaml.safe_load(imported.out.read_text("utf-8"))
    env = env_file_values(imported.env_file)
    converted = [str(n) for n, t in old["targets"].items() if isinstance(t, dict) and "url" in t]
    for name in converted:
        assert new["inputs"][name] == {"type": "alertmanager", "path": f"/dingtalk/{name}/send"}
        [rule] = [r for r in new["rules"] if r["inputs"] == [name]]
        assert rule["targets"] == [name]
        target, spec = new["targets"][name], old["targets"][name]
        webhook = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], target["webhook"])
        assert webhook == spec["url"]
        secret = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], target.get("secret", ""))
        assert secret == spec.get("secret", "")
        mention = spec.get("mention") or {}
        expected = [str(m) for m in mention.get("mobiles") or []]
        assert rule.get("mention", {}).get("mobiles", []) == expected
        assert rule.get("mention", {}).get("all", False) is (mention.get("all") is True)
    assert sorted(new["targets"]) == sorted(converted)


def test_no_secret_is_said_on_stderr_and_env_mode_keeps_them_out_of_the_config(
    imported: Imported,
) -> None:
    out, err, env_file = imported.out, imported.err, imported.env_file
    secrets = secrets_of(imported.old_text)
    assert secrets
    assert not [s for s in secrets if s in err]
    written = out.read_text("utf-8")
    mode = stat.S_IMODE(out.stat().st_mode)
    if env_file.exists():
        assert not [s for s in secrets if s in written]
        assert all(s in env_file.read_text("utf-8") for s in secrets)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert mode == 0o644
    else:
        assert mode == 0o600  # it holds the secrets, as the old config did


def test_stdout_gets_the_config_and_stderr_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(PWD)
    assert bridge_main(["import-pwd", "signed-mention.yml"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["inputs"]["oncall"]["path"] == "/dingtalk/oncall/send"
    assert "1 target converted into stdout" in captured.err
    assert "secrets: written into stdout as the old config held them\n" in captured.err


def test_existing_files_are_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new.yaml"
    out.write_text("mine", "utf-8")
    args = ["import-pwd", str(PWD / "signed-mention.yml"), "-o", str(out)]
    assert bridge_main(args) == 2
    assert out.read_text("utf-8") == "mine"
    assert "exists; --force to overwrite it" in capsys.readouterr().err
    assert bridge_main([*args, "--force"]) == 0
    assert "/dingtalk/oncall/send" in out.read_text("utf-8")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "code", "said"),
    [
        (None, 2, "cannot read: No such file or directory"),
        ("targets: [\n  url: https://x/?access_token=SECRETVALUE", 2, "old.yml:2:"),
        ("- just\n- a list\n", 1, "expected a mapping"),
        ("timeout: 5s\n", 1, "the config has no targets"),
        ("targets:\n  a: {secret: SECRETVALUE}\n", 1, "no target could be converted"),
    ],
)
def test_what_cannot_be_converted_is_said_without_its_secrets(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    code: int,
    said: str,
) -> None:
    old = tmp_path / "old.yml"
    if content is not None:
        old.write_text(content, "utf-8")
    assert bridge_main(["import-pwd", str(old), "-o", str(tmp_path / "new.yaml")]) == code
    err = capsys.readouterr().err
    assert said in err
    assert "SECRETVALUE" not in err
    assert not (tmp_path / "new.yaml").exists()


def test_a_listen_address_that_is_not_host_port_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["import-pwd", str(PWD / "signed-mention.yml"), "--web.listen-address", "8060"]
    assert bridge_main(args) == 2
    assert "--web.listen-address:" in capsys.readouterr().err


def test_relative_template_paths_are_read_against_the_old_workdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old bridge read `templates:` against its working directory (the Docker image's is
    /prometheus-webhook-dingtalk), not the config's: --workdir says where that was."""
    old = tmp_path / "etc" / "config.yml"
    old.parent.mkdir()
    old.write_text(f"templates: [t/*.tmpl]\ntargets:\n  a: {{url: '{URL}x'}}\n", "utf-8")
    (tmp_path / "work" / "t").mkdir(parents=True)
    (tmp_path / "work" / "t" / "a.tmpl").write_text('{{ define "ding.link.title" }}x{{ end }}')
    assert bridge_main(["import-pwd", str(old), "-o", str(tmp_path / "n.yaml")]) == 0
    assert "t/*.tmpl: no file found" in capsys.readouterr().err
    work = ["--workdir", str(tmp_path / "work"), "--force"]
    assert bridge_main(["import-pwd", str(old), "-o", str(tmp_path / "n.yaml"), *work]) == 0
    assert (
        "t/a.tmpl: defines ding.link.title (replacing the built-in ding.link.title); used by a"
        in (capsys.readouterr().err)
    )


def test_a_config_that_does_not_compile_is_written_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yml"
    old.write_text("targets:\n  a: {url: 'https://proxy.example/send?key=1'}\n", "utf-8")
    assert bridge_main(["import-pwd", str(old), "-o", str(tmp_path / "new.yaml")]) == 1
    err = capsys.readouterr().err
    assert "targets.a.url: no access_token parameter; `check` will refuse it" in err
    assert "the new config does not pass check (1 problems)" in err
    assert (tmp_path / "new.yaml").exists()


# -- the pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5s", 1.5), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "-5s", "5x", "s", "5s 3m", 5])
def test_what_is_not_a_go_duration(text: Any) -> None:
    with pytest.raises(ValueError):
        go_duration(text)


@pytest.mark.parametrize(
    ("address", "listen"),
    [
        (":8060", "0.0.0.0:8060"),  # Go: every interface
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        ("localhost:8060", "localhost:8060"),
        ("[::]:8060", "[::]:8060"),
    ],
)
def test_go_listen_addresses(address: str, listen: str) -> None:
    assert go_listen(address) == listen


@pytest.mark.parametrize("address", ["8060", "host:http", ":99999"])
def test_what_is_not_a_listen_address(address: str) -> None:
    with pytest.raises(ValueError):
        go_listen(address)


OVERRIDE = '{{ define "__text_alert_list" }}{{ range . }}{{ .Labels }}{{ end }}{{ end }}'
OWN = '{{/* {{ define "commented.out" }} */}}{{ define `own.title` }}x{{ end }}'


LEGACY = ('{{ template "legacy.title" . }}', '{{ template "legacy.content" . }}')
DEFAULT = (gotemplates.DEFAULT_TITLE, gotemplates.DEFAULT_TEXT)
# (title, text), the operator's files, built-ins loaded -> (kind, custom names, missing names)
LOOKS: list[tuple[tuple[str, str], list[str], bool, tuple[str, list[str], list[str]]]] = [
    (DEFAULT, [], True, ("default", [], [])),
    (
        ('{{ template "default.title" . }}', '{{- template "default.content" . -}}'),
        [],
        True,
        ("default", [], []),
    ),
    (LEGACY, [], True, ("legacy", [], [])),
    # a file replacing a name the legacy look calls makes it the operator's ...
    (LEGACY, [OVERRIDE], True, ("custom", ["__text_alert_list"], [])),
    # ... but not the default look, which calls another list
    (DEFAULT, [OVERRIDE], True, ("default", [], [])),
    (('{{ template "own.title" . }}', DEFAULT[1]), [OWN], True, ("custom", ["own.title"], [])),
    (
        ('{{ template "commented.out" . }}', DEFAULT[1]),
        [OWN],
        True,
        ("custom", [], ["commented.out"]),
    ),
    (("{{ .Status }}", DEFAULT[1]), [], True, ("inline", [], [])),
    (DEFAULT, [], False, ("custom", [], ["ding.link.content", "ding.link.title"])),
]


@pytest.mark.parametrize(("message", "files", "builtin", "expected"), LOOKS)
def test_what_an_old_message_was_made_of(
    message: tuple[str, str],
    files: list[str],
    builtin: bool,
    expected: tuple[str, list[str], list[str]],
) -> None:
    defined: dict[str, frozenset[str]] = {}
    for file in files:
        defined.update(gotemplates.definitions(file))
    look = gotemplates.classify(*message, defined, builtin)
    assert (look.kind, sorted(look.custom), sorted(look.missing)) == expected


def test_a_message_with_only_a_title_keeps_the_built_in_text_not_default_message() -> None:
    """As the old bridge fills a partial `message:` from its built-in default message."""
    old = {
        "default_message": {"title": "{{ .Status }}", "text": "{{ .Status }}"},
        "targets": {
            "a": {"url": f"{URL}x", "message": {"title": '{{ template "legacy.title" . }}'}}
        },
    }
    [robot] = convert(old).robots
    assert robot.look.kind == "legacy"


def test_default_message_applies_to_targets_without_a_message() -> None:
    old = {
        "default_message": {"title": '{{ template "legacy.title" . }}'},
        "targets": {"a": {"url": f"{URL}x"}},
    }
    assert convert(old).robots[0].look.kind == "legacy"


def test_secrets_to_env_names_each_secret_once_and_keeps_the_rest_of_the_url() -> None:
    old = {
        "targets": {
            "a-b": {"url": f"{URL}tok1&foo=bar", "secret": "SEC1"},
            "a_b": {"url": f"{URL}tok2", "secret": "${ALREADY}"},
            "c": {"url": "https://oapi.dingtalk.com/robot/send?access_token=${TOKEN_C}"},
        }
    }
    converted = convert(old, secrets_to_env=True)
    webhooks = {r.name: (r.webhook, r.secret) for r in converted.robots}
    assert webhooks == {
        "a-b": (f"{URL}${{DINGTALK_A_B_ACCESS_TOKEN}}&foo=bar", "${DINGTALK_A_B_SECRET}"),
        "a_b": (f"{URL}${{DINGTALK_A_B_ACCESS_TOKEN_2}}", "${ALREADY}"),
        "c": ("https://oapi.dingtalk.com/robot/send?access_token=${TOKEN_C}", None),
    }
    assert converted.env == {
        "DINGTALK_A_B_ACCESS_TOKEN": "tok1",
        "DINGTALK_A_B_SECRET": "SEC1",
        "DINGTALK_A_B_ACCESS_TOKEN_2": "tok2",
    }


def test_secrets_stay_out_of_reprs() -> None:
    converted = convert({"targets": {"a": {"url": f"{URL}tok-canary", "secret": "SECcanary"}}})
    assert "canary" not in repr(converted)
    converted = convert(
        {"targets": {"a": {"url": f"{URL}tok-canary", "secret": "SECcanary"}}}, secrets_to_env=True
    )
    assert "canary" not in repr(converted)


@pytest.mark.parametrize("name", ["0123", "on", "null", "1.5", "a.b-c_d"])
def test_names_yaml_would_read_as_something_else_are_quoted(name: str) -> None:
    converted = convert({"targets": {name: {"url": f"{URL}x"}}})
    text = render(converted, "old.yml")
    assert yaml.safe_load(text) == converted.config()
    assert name in yaml.safe_load(text)["targets"]


def test_template_files_that_matched_nothing_are_warned_about() -> None:
    old = {"targets": {"a": {"url": f"{URL}x"}}}
    globs = [TemplateGlob("gone/*.tmpl", ()), TemplateGlob("t.tmpl", (TemplateFile("t.tmpl", ""),))]
    converted = convert(old, globs)
    assert converted.warnings == ("templates: gone/*.tmpl: no file found; port it by hand",)
    assert converted.port == ("t.tmpl: defines nothing; used by no target",)


# -- generated documents -----------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
OLD_KEYS = "targets url secret mention mobiles all message title text templates template"
OLD_KEYS += " default_message timeout no_builtin_template a b-c"
KEYS = st.sampled_from(OLD_KEYS.split()) | st.text(max_size=8)
DOCUMENTS = st.recursive(
    SCALARS | st.just(f"{URL}tok") | st.just('{{ template "legacy.title" . }}'),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(old=DOCUMENTS, env=st.booleans(), texts=st.lists(st.text(max_size=80), max_size=3))
def test_generated_old_configs_convert_or_are_refused_never_crash(
    old: Any, env: bool, texts: list[str]
) -> None:
    globs = [TemplateGlob(f"g{i}", (TemplateFile(f"f{i}", t),)) for i, t in enumerate(texts)]
    try:
        converted = convert(old, globs, secrets_to_env=env)
    except ConversionError:
        return
    assert yaml.safe_load(render(converted, "old.yml")) == converted.config()


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_generated_template_text_never_crashes_the_scan(text: str) -> None:
    names = gotemplates.definitions(text)
    gotemplates.classify(text, text, names)
    with contextlib.suppress(ValueError):
        go_duration(text)


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=300) | DOCUMENTS.map(lambda d: yaml.safe_dump(d).encode()))
def test_generated_files_make_the_command_answer_never_crash(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "old.yml"
        old.write_bytes(content)
        args = ["import-pwd", str(old), "-o", str(Path(scratch) / "new.yaml")]
        with contextlib.redirect_stderr(io.StringIO()):
            assert bridge_main(args) in (0, 1, 2)


def test_a_deeply_nested_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yml"
    old.write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    assert bridge_main(["import-pwd", str(old)]) == 2
    err = capsys.readouterr().err
    assert "old.yml: nested too deeply: not a config" in err


@pytest.mark.parametrize(
    ("timeout", "written", "warned"),
    [
        ("10s", "10s", None),
        ("1m30s", "90s", None),
        ("1500ms", "1500ms", None),
        ("0s", None, "timeout: 0s is not between 1ms and 5m"),
        ("1h", None, "timeout: 1h is not between 1ms and 5m"),
        (5, None, "timeout: 5 is a bare number (nanoseconds to the old bridge)"),
        ("soon", None, "timeout: 'soon' is not a Go duration"),
    ],
)
def test_the_old_timeout_becomes_each_robots_timeout(
    timeout: Any, written: str | None, warned: str | None
) -> None:
    converted = convert({"timeout": timeout, "targets": {"a": {"url": f"{URL}x"}}})
    assert converted.config()["targets"]["a"].get("timeout") == written
    said = [w for w in converted.warnings if w.startswith("timeout")]
    if warned is None:
        assert said == []
    else:
        [warning] = said
        assert warning.startswith(warned) and warning.endswith("; the default 5s applies")
