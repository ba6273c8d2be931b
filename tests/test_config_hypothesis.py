"""Generated configs through the loader and `check`: never a traceback, always an answer.

Every document, however hostile (random structures; the example and the test configs with values
replaced by wrong types, huge numbers, deep nesting, odd unicode; YAML text with aliases, merge
keys, tags, control characters spliced in), ends in one of two ways: a `Config`, or a
`ConfigError` whose problems each name the file and say what is wrong. An "internal error"
problem (the loader's safety net for a bug of ours) counts as a failure here.

Modest example counts keep this in the normal test run; bench/fuzz.py runs the long version.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.cli.main import main as bridge_main
from bridge.config.compile import INTERNAL_ERROR, load_config
from bridge.config.model import Config
from bridge.errors import ConfigError
from tests.configgen import (
    BASES,
    ENVIRON,
    HOSTILE_SNIPPETS,
    documents,
    mutated_documents,
    spliced_texts,
)
from tests.harness import ROOT, bridge_cli

SETTINGS = settings(
    max_examples=60,
    deadline=None,  # speed is bench/fuzz.py's business, not a test's
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The configs' neighbours (templates, secret files) copied beside the generated files."""
    directory = tmp_path_factory.mktemp("configgen")
    shutil.copytree(ROOT / "tests" / "configs" / "good", directory, dirs_exist_ok=True)
    yield directory


def assert_answered(path: Path) -> Config | None:
    try:
        return load_config(path, environ=ENVIRON)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        for problem in exc.problems:
            assert problem.file == str(path), problem
            assert problem.message.strip(), problem
            assert INTERNAL_ERROR not in problem.message, problem
            problem.format()  # formats without raising
        return None


def write(workdir: Path, text: str) -> Path:
    path = workdir / "generated.yaml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    return path


@SETTINGS
@given(documents())
def test_random_documents(workdir: Path, data: Any) -> None:
    assert_answered(write(workdir, yaml.safe_dump(data, allow_unicode=True)))


@SETTINGS
@given(mutated_documents())
def test_mutations_of_the_example_and_the_test_configs(workdir: Path, data: Any) -> None:
    if isinstance(data, dict) and isinstance(data.get("state_dir"), str):
        data["state_dir"] = str(workdir / "state")  # (nothing is written outside the tmp dir)
    assert_answered(write(workdir, yaml.safe_dump(data, allow_unicode=True, sort_keys=False)))


@SETTINGS
@given(spliced_texts())
def test_yaml_text_with_hostile_snippets_spliced_in(workdir: Path, text: str) -> None:
    assert_answered(write(workdir, text))


@pytest.mark.parametrize("snippet", HOSTILE_SNIPPETS)
def test_each_hostile_snippet_alone_at_the_top(workdir: Path, snippet: str) -> None:
    base = (ROOT / "tests" / "configs" / "good" / "routing.yaml").read_text("utf-8")
    assert_answered(write(workdir, snippet + "\n" + base))


@settings(SETTINGS, max_examples=40)
@given(st.one_of(mutated_documents(), documents()))
def test_check_in_process_answers_every_document(workdir: Path, data: Any) -> None:
    path = write(workdir, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = bridge_main(["check", "-c", str(path)])
    assert code in (0, 1)
    if code == 0:
        assert ": OK: " in out.getvalue()
    else:
        assert "problem" in err.getvalue() and INTERNAL_ERROR not in err.getvalue()
    assert "Traceback" not in err.getvalue()


@settings(SETTINGS, max_examples=8)
@given(spliced_texts())
def test_check_as_a_command_prints_no_traceback(workdir: Path, text: str) -> None:
    # The real command, with its real stdout/stderr encodings (a lone surrogate in a problem
    # must not crash the printing of it).
    path = write(workdir, text)
    result = bridge_cli("check", "-c", str(path), env={**ENVIRON, "PATH": "/usr/bin:/bin"})
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert INTERNAL_ERROR not in result.stderr


def test_the_bases_load() -> None:
    """The generators start from configs that are valid (or, for bad/, fail as documented)."""
    assert len(BASES) >= 5
    for name, base in BASES.items():
        assert isinstance(base, dict), name
