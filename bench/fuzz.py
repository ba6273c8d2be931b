"""Fuzz run: hostile requests at a real daemon, hostile configs through `check`.

    python -m bench.fuzz                                  # 100,000 requests, 10,000 configs
    python -m bench.fuzz --requests 5000 --configs 500    # a short run
    python -m bench.fuzz --requests 0                     # configs only (or --configs 0)

Requests: a real daemon (with the DingTalk simulator behind it) serving the four HTTP input kinds,
`alertmanager`, `webhook` (with a bearer token), `dingtalk_callback` and `dingtalk_robot` (chat).
`--workers` processes each keep a connection and send generated requests, about a third
well-formed (signed callbacks and chat messages, real Alertmanager notifications) and the rest
hostile: random JSON, real payloads with one field replaced (lone surrogates as escapes and as raw
bytes ED A0 80, integers of 5,000 digits, nesting ~990 deep, times without a zone, huge strings,
wrong types), invalid UTF-8, truncated or empty bodies, wrong methods, content types, tokens,
signatures and query strings, oversized bodies, chat commands with absurd durations. Counted:
answers by status and input, 5xx, transport errors, hangs (no answer within `--timeout`),
"Traceback" in the daemon's log, and the daemon's RSS before and after.

Configs: documents from tests/configgen.py (random structures, mutations of the example and the
test configs, hostile YAML spliced into real ones) through `load_config`, in `--workers`
processes, plus every 500th through the real `dingtalk-bridge check` command. Counted: loaded,
refused with problems, internal errors (the loader's safety net caught a bug), exceptions
(tracebacks), slow ones (over 5 s) and the slowest.

Prints a summary and writes bench/results/fuzz.json. Exit status 1 when anything crashed, hung or
answered 500.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path("/work/shared/fixtures/alertmanager")

AM_PATH, WEBHOOK_PATH, CALLBACK_PATH, CHAT_PATH = "/am", "/hook", "/dingtalk/events", "/chat"
WEBHOOK_TOKEN = "fuzz-webhook-token"
CALLBACK_TOKEN = "fuzz-callback-token"
CALLBACK_AES_KEY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"  # 43 characters, as DingTalk's
OWNER_KEY = "dingfuzzcorp"
CHAT_SECRET = "fuzz-chat-app-secret"
MAX_BODY = 65_536
SLOW_CONFIG_S = 5.0
CONFIG_MEMORY_CAP = 4 << 30  # bytes of address space a config worker may use


# -- requests ------------------------------------------------------------------------------------


def _fixture() -> dict[str, Any]:
    path = FIXTURES / "firing.json"
    if path.is_file():
        loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return loaded
    return {  # the shape of an Alertmanager 0.25 notification, when the fixtures are not here
        "version": "4",
        "groupKey": '{}:{alertname="Fuzz"}',
        "status": "firing",
        "receiver": "dingtalk",
        "groupLabels": {"alertname": "Fuzz"},
        "commonLabels": {"alertname": "Fuzz"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Fuzz"},
                "annotations": {"summary": "fuzz"},
                "startsAt": "2026-12-01T08:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1e308,
    "",
    "x" * 20_000,
    "a\nb\r\nFORGED line",
    "\u2028\u2029\x00\x1b[31m",
    "2026-12-01T08:00:00",  # no zone
    "2026-12-01T08:00:00Z",
    "not a time",
    "9999-12-31T23:59:59Z",
    [],
    {},
    [1, 2, 3],
    {"nested": {"deeper": [1, {"x": None}]}},
]
RAW_MARK = "@@RAW@@"  # replaced in the encoded JSON by raw bytes that are not UTF-8
RAW_BYTES = [b"\xed\xa0\x80", b"\xff\xfe", b"\xc0\xaf", b"\x80"]
JSON_TOKENS = [
    '"\\ud800"',  # a lone surrogate, escaped
    '"\\udfff\\ud800"',
    "9" * 5000,  # over Python's 4,300-digit limit
    "1e999999",
    "-0",
    "NaN",
    "Infinity",
    "[" * 990 + "]" * 990,
    '{"a":' * 990 + "1" + "}" * 990,
    '"' + "\\u0000" * 100 + '"',
]
CHAT_TEXTS = [
    "help",
    "status",
    "silences",
    "silence alertname=FuzzNever 999999999d",
    "silence alertname=FuzzNever 366d",
    "silence alertname=FuzzNever 1e400d",
    "silence alertname=FuzzNever -1h",
    "silence alertname=~(a+)+$ 1m",
    "silence alertname=FuzzNever 1m fuzz",
    "expire 0",
    "expire %",
    "ack deadbeef",
    "ack " + "x" * 1000,
    "reboot everything",
    "silence \u2028\x00 1h",
    "",
    " " * 100,
    "中文 命令",
]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return rng.choice([*HOSTILE_VALUES[:13], rng.randrange(-(10**9), 10**9)])
    if roll < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {
        str(rng.choice([*HOSTILE_VALUES[5:9], "k", "labels", "alerts"])): _random_json(
            rng, depth + 1
        )
        for _ in range(rng.randrange(0, 4))
    }


def _replace_somewhere(rng: random.Random, doc: Any, new: Any) -> Any:
    """`doc` with one value (at a random place) replaced by `new`."""
    if not isinstance(doc, dict | list) or not doc or rng.random() < 0.25:
        return new
    if isinstance(doc, dict):
        key = rng.choice(list(doc))
        doc[key] = _replace_somewhere(rng, doc[key], new)
    else:
        index = rng.randrange(len(doc))
        doc[index] = _replace_somewhere(rng, doc[index], new)
    return doc


def _encode(doc: Any) -> bytes:
    text = json.dumps(doc, ensure_ascii=False)
    body = text.encode("utf-8", errors="surrogatepass")
    return body


def _hostile_json_body(rng: random.Random, base: Any) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return _encode(_replace_somewhere(rng, base, rng.choice(HOSTILE_VALUES)))
    if roll < 0.55:  # a JSON token spliced in as text, where a value was
        doc = _replace_somewhere(rng, base, "@@TOKEN@@")
        return _encode(doc).replace(b'"@@TOKEN@@"', rng.choice(JSON_TOKENS).encode())
    if roll < 0.7:  # raw bytes that are not UTF-8 inside a string
        doc = _replace_somewhere(rng, base, f"x{RAW_MARK}y")
        return _encode(doc).replace(RAW_MARK.encode(), rng.choice(RAW_BYTES))
    if roll < 0.8:
        return _encode(_random_json(rng))
    if roll < 0.88:
        body = _encode(base)
        return body[: rng.randrange(0, max(1, len(body)))]  # truncated
    if roll < 0.94:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    return b""


class Requests:
    """Generated requests: (method, path with query, headers, body, input name)."""

    def __init__(self, seed: int) -> None:
        from bridge.dingtalk.callback_crypto import derive_key

        self.rng = random.Random(seed)
        self.fixture = _fixture()
        self.key = derive_key(CALLBACK_AES_KEY)
        self.counter = 0

    def _alert(self, deliver: bool) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(json.dumps(self.fixture))
        self.counter += 1
        name = f"Fuzz{os.getpid()}x{self.counter}"
        for alert in doc.get("alerts", []):
            alert["labels"] = {**alert.get("labels", {}), "alertname": name}
            alert["labels"]["fuzz"] = "deliver" if deliver else "drop"
            alert["fingerprint"] = hashlib.sha256(name.encode()).hexdigest()[:16]
        doc["commonLabels"] = {"alertname": name, "fuzz": "deliver" if deliver else "drop"}
        doc["groupKey"] = f'{{}}:{{alertname="{name}"}}'
        return doc

    def _chat_body(self, text: str) -> dict[str, Any]:
        return {
            "msgtype": "text",
            "text": {"content": f" {text}"},
            "senderStaffId": self.rng.choice(["oncall-1", "visitor", ""]),
            "senderNick": "fuzz",
            "isAdmin": self.rng.random() < 0.5,
            "conversationType": "2",
            "conversationId": "cid-fuzz",
        }

    def _chat_headers(self) -> dict[str, str]:
        ts = str(int(time.time() * 1000))
        if self.rng.random() < 0.2:
            ts = self.rng.choice(["", "0", "abc", "9" * 40, str(int(time.time() * 1000) + 3.5e6)])
        digest = hmac.new(
            CHAT_SECRET.encode(), f"{ts}\n{CHAT_SECRET}".encode(), hashlib.sha256
        ).digest()
        sign = base64.b64encode(digest).decode()
        if self.rng.random() < 0.2:
            sign = self.rng.choice(["", "x", sign[:-2], "\u00e9"])
        return {"timestamp": ts, "sign": sign}

    def _callback(self, valid: bool) -> tuple[str, bytes]:
        from bridge.dingtalk.callback_crypto import sealed

        rng = self.rng
        event: Any = {"EventType": rng.choice(["user_add_org", "check_url", "bpms_task_change"])}
        if not valid:
            event = _replace_somewhere(rng, {**event, "UserId": ["u1"]}, rng.choice(HOSTILE_VALUES))
        ts = str(int(time.time() * 1000))
        nonce = f"{rng.getrandbits(48):x}"
        message = json.dumps(event, ensure_ascii=False)
        reply = sealed(CALLBACK_TOKEN, self.key, OWNER_KEY, message, ts, nonce, rng.randbytes(16))
        query = {"msg_signature": reply["msg_signature"], "timestamp": ts, "nonce": nonce}
        body: bytes = _encode({"encrypt": reply["encrypt"]})
        if not valid:
            roll = rng.random()
            if roll < 0.25:
                query["msg_signature"] = rng.choice(["", "0" * 40, "x"])
            elif roll < 0.45:
                query.pop(rng.choice(list(query)))
            elif roll < 0.6:
                query["timestamp"] = rng.choice(["0", "-1", "9" * 30, "abc", ts + "0"])
            elif roll < 0.8:
                body = _hostile_json_body(rng, {"encrypt": reply["encrypt"]})
            else:  # a signed body whose ciphertext is garbage: the signature must be checked first
                junk = rng.choice(["not base64!", base64.b64encode(rng.randbytes(40)).decode()])
                body = _encode({"encrypt": junk})
        return f"{CALLBACK_PATH}?{urlencode(query)}", body

    def next(self) -> tuple[str, str, dict[str, str], bytes, str]:
        rng = self.rng
        kind = rng.choice(["alertmanager", "webhook", "dingtalk_callback", "dingtalk_robot"])
        valid = rng.random() < 0.33
        headers = {"Content-Type": "application/json"}
        method = "POST"
        if kind == "alertmanager":
            path = AM_PATH
            base = self._alert(deliver=valid and rng.random() < 0.05)
            body = _encode(base) if valid else _hostile_json_body(rng, base)
        elif kind == "webhook":
            path = WEBHOOK_PATH
            base = {"app": "fuzz", "status": "firing", "n": self.counter}
            body = _encode(base) if valid else _hostile_json_body(rng, base)
            token = WEBHOOK_TOKEN if valid or rng.random() < 0.7 else rng.choice(["", "wrong"])
            headers["Authorization"] = f"Bearer {token}"
        elif kind == "dingtalk_callback":
            path, body = self._callback(valid)
        else:
            path = CHAT_PATH
            text = rng.choice(CHAT_TEXTS)
            base = self._chat_body(text)
            body = _encode(base) if valid else _hostile_json_body(rng, base)
            headers.update(self._chat_headers())
        if not valid:
            roll = rng.random()
            if roll < 0.04:
                method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            elif roll < 0.08:
                headers["Content-Type"] = rng.choice(["text/plain", "", "application/json; x=\x7f"])
            elif roll < 0.1:
                body = b"{" + b" " * (MAX_BODY + 10) + b"}"  # over max_body_bytes: 413
            elif roll < 0.12:
                path += rng.choice(["?%zz", "?a=" + "b" * 5000, "/../x", "%00"])
        return method, path, headers, body, kind


def _worker(port: int, count: int, seed: int, timeout: float, queue: Any) -> None:
    gen = Requests(seed)
    statuses: Counter[str] = Counter()
    samples: dict[str, str] = {}
    hangs = errors = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    latencies: list[float] = []
    for _ in range(count):
        method, path, headers, body, kind = gen.next()
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except TimeoutError:
            hangs += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            continue
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            continue
        latencies.append(time.perf_counter() - started)
        statuses[f"{kind} {status}"] += 1
        if status >= 500 and f"{kind} {status}" not in samples:
            samples[f"{kind} {status}"] = (
                f"{method} {path[:120]} body={body[:300]!r} -> {answer[:300]!r}"
            )
    conn.close()
    latencies.sort()
    queue.put(
        {
            "statuses": dict(statuses),
            "hangs": hangs,
            "transport_errors": errors,
            "samples": samples,
            "max_s": latencies[-1] if latencies else 0.0,
            "p99_s": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        }
    )


def _rss_kb(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def fuzz_requests(count: int, workers: int, timeout: float, seed: int) -> dict[str, Any]:
    from tests.harness import Daemon, Simulator

    sim = Simulator(spec={"robots": {"tok-fuzz": {"rate_per_minute": 0}}})
    directory = Path(tempfile.mkdtemp(prefix="bridge-fuzz-"))
    config = {
        "server": {"max_body_bytes": MAX_BODY},
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-fuzz"),
                "rate_limit": {"messages": 0},
                "queue_size": 1_000_000,
            }
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": AM_PATH},
            "hook": {"type": "webhook", "path": WEBHOOK_PATH, "token": WEBHOOK_TOKEN},
            "events": {
                "type": "dingtalk_callback",
                "path": CALLBACK_PATH,
                "token": CALLBACK_TOKEN,
                "aes_key": CALLBACK_AES_KEY,
                "owner_key": OWNER_KEY,
            },
            "chat": {
                "type": "dingtalk_robot",
                "path": CHAT_PATH,
                "app_secret": CHAT_SECRET,
                "allow": {"staff_ids": ["oncall-1"], "admins": True},
            },
        },
        "rules": [{"name": "deliver", "match": {"fuzz": "deliver"}, "targets": ["ops"]}],
    }
    daemon = Daemon(config, directory=directory)
    try:
        time.sleep(1.0)
        rss_before = _rss_kb(daemon.proc.pid)
        queue: Any = mp.Queue()
        share = [count // workers + (i < count % workers) for i in range(workers)]
        started = time.perf_counter()
        procs = [
            mp.Process(target=_worker, args=(daemon.port, n, seed * 1000 + i, timeout, queue))
            for i, n in enumerate(share)
        ]
        for proc in procs:
            proc.start()
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        elapsed = time.perf_counter() - started
        rss_after = _rss_kb(daemon.proc.pid)
        alive = daemon.proc.poll() is None
    finally:
        daemon.stop()
        sim.stop()
    log = daemon.log()
    statuses: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for r in results:
        statuses.update(r["statuses"])
        samples.update(r["samples"])
    by_status: Counter[int] = Counter()
    for key, n in statuses.items():
        by_status[int(key.rsplit(" ", 1)[1])] += n
    tracebacks = log.count("Traceback")
    first = log.find("Traceback")
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "requests": count,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(count / elapsed, 1) if elapsed else 0.0,
        "by_status": dict(sorted(by_status.items())),
        "by_input_status": dict(sorted(statuses.items())),
        "status_5xx": sum(n for s, n in by_status.items() if s >= 500),
        "status_500": by_status.get(500, 0),
        "hangs": sum(r["hangs"] for r in results),
        "transport_errors": sum(r["transport_errors"] for r in results),
        "max_latency_s": round(max(r["max_s"] for r in results), 3),
        "tracebacks_in_log": tracebacks,
        "first_traceback": log[first : first + 1500] if first >= 0 else "",
        "samples_5xx": samples,
        "rss_kb_before": rss_before,
        "rss_kb_after": rss_after,
        "daemon_alive_at_end": alive,
    }


# -- configs -------------------------------------------------------------------------------------


def _caused_by_memory(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised while handling, a MemoryError."""
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return False
        if isinstance(seen, MemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _config_worker(args: tuple[int, int, int]) -> dict[str, Any]:
    start, count, seed = args
    import resource

    import yaml

    # A config that makes the loader take gigabytes must be counted, not let the kernel's OOM
    # killer end this pool worker (Pool.map then waits forever; seen once, at 23 GB).
    resource.setrlimit(resource.RLIMIT_AS, (CONFIG_MEMORY_CAP, CONFIG_MEMORY_CAP))

    from bridge.config.compile import INTERNAL_ERROR, load_config
    from bridge.errors import ConfigError
    from tests.configgen import ENVIRON, mutated_document, random_document, spliced_text

    directory = Path(tempfile.mkdtemp(prefix="bridge-fuzzcfg-"))
    shutil.copytree(ROOT / "tests" / "configs" / "good", directory, dirs_exist_ok=True)
    path = directory / "generated.yaml"
    rng = random.Random(seed)
    tally: Counter[str] = Counter()
    slowest = (0.0, "")
    samples: dict[str, str] = {}
    for n in range(start, start + count):
        gen = (random_document, mutated_document, spliced_text)[n % 3]
        data = gen(rng)
        if isinstance(data, dict) and isinstance(data.get("state_dir"), str):
            data["state_dir"] = str(directory / "state")
        text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
        path.write_text(text, "utf-8")
        began = time.perf_counter()
        try:
            load_config(path, ENVIRON)
            tally["loaded"] += 1
        except ConfigError as exc:
            if _caused_by_memory(exc):
                tally["memory_error"] += 1
                samples.setdefault("memory: " + repr(exc.__cause__)[:100], text[:400])
            elif any(INTERNAL_ERROR in p.message for p in exc.problems):
                tally["internal_error"] += 1
                samples.setdefault(repr(exc.__cause__)[:120], text[:400])
            elif all(p.file and p.message for p in exc.problems):
                tally["refused_with_problems"] += 1
            else:
                tally["problem_without_file_or_message"] += 1
        except BaseException as exc:  # a traceback `check` would print
            tally["memory_error" if _caused_by_memory(exc) else "exception"] += 1
            samples.setdefault(repr(exc)[:120], text[:400])
        took = time.perf_counter() - began
        tally["slow"] += took > SLOW_CONFIG_S
        if took > slowest[0]:
            slowest = (took, text[:200])
        if n % 500 == 0:  # now and then the real command, with its real output encoding
            done = subprocess.run(
                [sys.executable, "-m", "bridge", "check", "-c", str(path)],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=60,
                cwd=ROOT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
            tally["check_commands"] += 1
            if done.returncode not in (0, 1) or "Traceback" in done.stderr:
                tally["check_command_traceback"] += 1
                samples.setdefault("check command", done.stderr[-400:])
    shutil.rmtree(directory, ignore_errors=True)
    return {"tally": dict(tally), "slowest": slowest, "samples": samples}


def fuzz_configs(count: int, workers: int, seed: int) -> dict[str, Any]:
    share = [count // workers + (i < count % workers) for i in range(workers)]
    starts = [sum(share[:i]) for i in range(workers)]
    began = time.perf_counter()
    with mp.Pool(workers) as pool:
        results = pool.map(
            _config_worker, [(starts[i], share[i], seed * 7919 + i) for i in range(workers)]
        )
    elapsed = time.perf_counter() - began
    tally: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for r in results:
        tally.update(r["tally"])
        samples.update(r["samples"])
    slowest = max((r["slowest"] for r in results), key=lambda s: s[0])
    return {
        "configs": count,
        "seconds": round(elapsed, 1),
        **{k: tally.get(k, 0) for k in ("loaded", "refused_with_problems", "internal_error")},
        "exceptions": tally.get("exception", 0),
        "memory_errors": tally.get("memory_error", 0),
        "problem_without_file_or_message": tally.get("problem_without_file_or_message", 0),
        "slow_over_5s": tally.get("slow", 0),
        "slowest_s": round(slowest[0], 3),
        "slowest_start": slowest[1],
        "check_commands": tally.get("check_commands", 0),
        "check_command_tracebacks": tally.get("check_command_traceback", 0),
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="request senders (configs: 2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="a request over it hangs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    result: dict[str, Any] = {"seed": args.seed}
    if args.requests:
        result["http"] = fuzz_requests(args.requests, args.workers, args.timeout, args.seed)
    if args.configs:
        result["configs"] = fuzz_configs(args.configs, min(2, args.workers), args.seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "fuzz.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    failed = False
    if "http" in result:
        h = result["http"]
        print(
            f"requests: {h['requests']} in {h['seconds']} s ({h['requests_per_s']}/s); "
            f"by status {h['by_status']}"
        )
        print(
            f"  5xx {h['status_5xx']} (500: {h['status_500']}), hangs {h['hangs']}, "
            f"transport errors {h['transport_errors']}, tracebacks in log "
            f"{h['tracebacks_in_log']}, slowest answer {h['max_latency_s']} s"
        )
        print(
            f"  daemon RSS {h['rss_kb_before'].get('VmRSS', 0) / 1024:.1f} MB before, "
            f"{h['rss_kb_after'].get('VmRSS', 0) / 1024:.1f} MB after "
            f"(peak {h['rss_kb_after'].get('VmHWM', 0) / 1024:.1f} MB); "
            f"alive at end: {h['daemon_alive_at_end']}"
        )
        for key, sample in h["samples_5xx"].items():
            print(f"  first {key}: {sample[:300]}")
        failed |= bool(
            h["status_500"] or h["hangs"] or h["tracebacks_in_log"] or not h["daemon_alive_at_end"]
        )
    if "configs" in result:
        c = result["configs"]
        print(
            f"configs: {c['configs']} in {c['seconds']} s: loaded {c['loaded']}, refused with "
            f"problems {c['refused_with_problems']}, internal errors {c['internal_error']}, "
            f"exceptions {c['exceptions']}, over {CONFIG_MEMORY_CAP >> 30} GiB "
            f"{c['memory_errors']}, over {SLOW_CONFIG_S:.0f} s {c['slow_over_5s']} "
            f"(slowest {c['slowest_s']} s); check commands {c['check_commands']}, with a "
            f"traceback {c['check_command_tracebacks']}"
        )
        for key, sample in c["samples"].items():
            print(f"  {key}: {sample[:200]!r}")
        failed |= bool(
            c["internal_error"]
            or c["exceptions"]
            or c["memory_errors"]
            or c["slow_over_5s"]
            or c["check_command_tracebacks"]
            or c["problem_without_file_or_message"]
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
