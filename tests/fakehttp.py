"""A stand-in for the requests.Session the DingTalk client calls, for in-process tests of
channels: each fake says how it answers (`answer`); the Session's call shape is written once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Response:
    status_code: int
    content: bytes


class FakeHttp:
    """`request` as requests.Session has it, handed to `answer` with the body as sent."""

    def request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self.answer(method, url, data, dict(params or {}), dict(headers or {}))

    def answer(
        self, method: str, url: str, data: bytes | None, params: dict[str, str],
        headers: dict[str, str],
    ) -> Response:  # fmt: skip
        raise NotImplementedError
