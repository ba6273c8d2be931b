"""The errcodes and errmsgs the simulator answers with (reference/dingtalk.md §1.8, §2.1, §3.1).

Clients must match on errcode, never on errmsg, so the errmsgs here only have to be helpful;
where the reference quotes a real one we use it verbatim.
"""

from __future__ import annotations

OK = 0
SYSTEM_BUSY = -1

# Custom group robot webhook.
ROBOT_TOKEN_NOT_EXIST = 300001
ROBOT_SEND_TOO_FAST = 130101
ROBOT_MESSAGE_TOO_LONG = 460101
ROBOT_SECURITY_FAILED = 310000  # keywords / sign / timestamp
INVALID_PARAMETER = 40035  # 缺少参数 / 不合法的参数, also used by the topapi endpoints

# Access tokens and work notifications.
INVALID_CORP_SECRET = 40089
INVALID_ACCESS_TOKEN = 40014
ACCESS_TOKEN_EXPIRED = 42001
NO_RECIPIENT = 1430000
# forbidden_list codes in getsendresult: why a recipient was silently filtered.
USER_DAILY_LIMIT = 143105
USER_DUPLICATE_CONTENT = 143106

MSG_OK = "ok"
MSG_TOKEN_NOT_EXIST = "token is not exist"
MSG_MESSAGE_TOO_LONG = "message too long, exceed 20000 bytes"
MSG_SIGN_NOT_MATCH = "sign not match"
MSG_INVALID_TIMESTAMP = "invalid timestamp"
MSG_KEYWORDS_NOT_IN_CONTENT = "keywords not in content"
MSG_INVALID_CORP_SECRET = "不合法的corpid或corpsecret"
MSG_INVALID_ACCESS_TOKEN = "不合法的access_token"
MSG_ACCESS_TOKEN_EXPIRED = "access_token超时"
MSG_NO_RECIPIENT = "接受者为空"
MSG_SYSTEM_BUSY = "系统繁忙"


def send_too_fast(rate_per_minute: int) -> str:
    return f"send too fast, exceed {rate_per_minute} times per minute"


# Default errmsgs for errcode faults injected without an errmsg.
DEFAULT_ERRMSGS: dict[int, str] = {
    SYSTEM_BUSY: MSG_SYSTEM_BUSY,
    ROBOT_SEND_TOO_FAST: send_too_fast(20),
    ROBOT_TOKEN_NOT_EXIST: MSG_TOKEN_NOT_EXIST,
    ROBOT_MESSAGE_TOO_LONG: MSG_MESSAGE_TOO_LONG,
    ROBOT_SECURITY_FAILED: MSG_SIGN_NOT_MATCH,
    INVALID_ACCESS_TOKEN: MSG_INVALID_ACCESS_TOKEN,
    ACCESS_TOKEN_EXPIRED: MSG_ACCESS_TOKEN_EXPIRED,
    INVALID_CORP_SECRET: MSG_INVALID_CORP_SECRET,
    NO_RECIPIENT: MSG_NO_RECIPIENT,
}
