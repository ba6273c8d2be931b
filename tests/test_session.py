"""The DingTalk session (bridge/dingtalk/session.py) honours the environment without paying for
it on every call: proxies keep requests' per-call lookups, a CA bundle is read once."""

from __future__ import annotations

import pytest

from bridge.dingtalk.session import make_session

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_without_proxies_the_environment_is_not_consulted_per_call() -> None:
    session = make_session()
    assert session.trust_env is False
    assert session.verify is True  # the default bundle


@pytest.mark.parametrize(
    ("variables", "bundle"),
    [
        ({"REQUESTS_CA_BUNDLE": "/etc/ca/a.pem"}, "/etc/ca/a.pem"),
        ({"CURL_CA_BUNDLE": "/etc/ca/b.pem"}, "/etc/ca/b.pem"),
        (
            {"REQUESTS_CA_BUNDLE": "/etc/ca/a.pem", "CURL_CA_BUNDLE": "/etc/ca/b.pem"},
            "/etc/ca/a.pem",
        ),
    ],
)
def test_a_ca_bundle_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], bundle: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    session = make_session()
    assert session.trust_env is False
    assert session.verify == bundle


def test_a_proxy_keeps_requests_reading_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca/a.pem")
    session = make_session()
    assert session.trust_env is True  # requests then honours NO_PROXY and the bundle per call
    assert session.verify is True
