"""The organisation's monthly API quota: DingTalk meters an organisation's server API calls per
calendar month (basic organisations get 10,000) and, once they are used up, answers every metered
call with errcode 90020 (oapi) or HTTP 403 `Forbidden.AccessDenied.ApiCountLimitForOrg` (v1.0)
until the month turns (dingtalk.com/qidian help 1061621972). Which calls are metered is not
listed there; the simulator meters the sends (work notices, app-robot messages, cards), the
calls an alert bridge makes in bulk, and not token fetches.

Runs under SimulatorState's lock, as every family does.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

# DingTalk's months, like its days, are China's (see apps.DINGTALK_DAY).
_CHINA = timezone(timedelta(hours=8))
QUOTA_ERRCODE = 90020
QUOTA_CODE = "Forbidden.AccessDenied.ApiCountLimitForOrg"


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, _CHINA).strftime("%Y-%m")


class MonthlyQuota:
    """Metered calls per app and month. (An organisation may hold several apps that share one
    quota; the simulator gives each app its own organisation.)"""

    def __init__(self) -> None:
        self._used: dict[tuple[str, str], int] = {}

    def clear(self) -> None:
        self._used.clear()

    def take(self, now: float, app_key: str, limit: int) -> str | None:
        """Count one metered call; None when it may go on, else DingTalk's message why not.
        `limit` 0: no quota."""
        if limit <= 0:
            return None
        key = (app_key, month_of(now))
        used = self._used.get(key, 0)
        if used >= limit:
            return (
                f"您的企业本月api调用量已超过限制,调用量:{used + 1}次,额度:{limit}次,"
                "请登录开发者后台-资源管理-查看用量明细"
            )
        self._used[key] = used + 1
        return None
