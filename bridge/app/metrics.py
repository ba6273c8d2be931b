"""/metrics in Prometheus's text format: a collector that reads the running bridge when scraped.

Nothing on the hot paths writes to a metrics library: the intake, the senders and the file inputs
keep plain counters, and this module turns them (and the outbox, read from the store) into
metric families at scrape time. A sender replaced by a reload starts its counters at 0 again,
which Prometheus treats as a counter reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.app import health

if TYPE_CHECKING:
    from bridge.app.bridge import Bridge
    from bridge.delivery.sender import TargetSender

PREFIX = "dingtalk_bridge"


class BridgeCollector(Collector):
    """`siblings`: the local families of the other workers of `server.workers` (their
    snapshots, app/siblings.py), added to this process's own; empty for a single process."""

    def __init__(self, bridge: Bridge, siblings: Sequence[list[Any]] = ()) -> None:
        self.bridge = bridge
        self.siblings = siblings

    def collect(self) -> Iterator[Metric]:
        bridge = self.bridge
        yield InfoMetricFamily(f"{PREFIX}_build", "The running version.", {"version": __version__})
        # One readiness pass per scrape: it probes the store and reads each file input's status
        # (which counts the lines behind), work not to be done twice.
        _ready, details = health.readiness(bridge)
        yield from add_up(self.local_families(details["files"]), self.siblings)
        yield from self._awaiting()
        yield from self._outbox(details)
        yield from self._config()

    def local_families(self, files: dict[str, dict[str, Any]]) -> list[Metric]:
        """What this process counts itself (each worker its own share, to be added up); the
        rest is read from the shared store or the config, the same in every worker."""
        counters = self.bridge.intake.counters
        families: list[Metric] = [
            _counter(
                "events_received",
                "Events accepted from each input.",
                ["input"],
                counters.events,
            ),
            _counter(
                "events_rejected",
                "Requests refused, by input and reason.",
                ["input", "reason"],
                counters.rejected,
            ),
            _counter(
                "events_duplicate",
                "Notifications absorbed as copies of one taken within the input's dedup_window.",
                ["input"],
                counters.duplicates,
            ),
            _counter(
                "rule_matches",
                "Events each rule matched.",
                ["rule"],
                counters.matched,
            ),
        ]
        for name, value, text in (
            ("events_unmatched", counters.unmatched, "Events no rule matched."),
            ("events_silenced", counters.silenced, "Alerts swallowed by a silence."),
            (
                "events_not_sent_again",
                counters.deduplicated,
                "Unchanged alerts within repeat_interval.",
            ),
        ):
            families.append(CounterMetricFamily(f"{PREFIX}_{name}", text, value=value))
        families += self._senders()
        families += self._notices()
        families += self._app_robot()
        families += self._escalations()
        families += self._files(files)
        families += self._streams()
        return families

    def _streams(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """DingTalk Stream connections (app/streams.py), by app key (an AppKey is no secret)."""
        links = sorted(self.bridge.streams.links.items())
        frames = CounterMetricFamily(
            f"{PREFIX}_stream_frames",
            "Frames received over DingTalk Stream connections, by app key, type and topic"
            " (type invalid: not a frame).",
            labels=["app_key", "type", "topic"],
        )
        acks = CounterMetricFamily(
            f"{PREFIX}_stream_acks",
            "Acknowledgements sent over Stream connections, by app key and code (200, 404 no"
            " handler for the topic, 500 an event the store could not take: sent again).",
            labels=["app_key", "code"],
        )
        reconnects = CounterMetricFamily(
            f"{PREFIX}_stream_reconnects",
            "Stream connections opened again after one ended.",
            labels=["app_key"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_stream_connected",
            "1 while the app's Stream connection is up.",
            labels=["app_key"],
        )
        for key, link in links:
            for (kind, topic), count in sorted(link.stats.frames.items()):
                frames.add_metric([key, kind, topic], count)
            for code, count in sorted(link.stats.acks.items()):
                acks.add_metric([key, str(code)], count)
            reconnects.add_metric([key], link.stats.reconnects)
            up.add_metric([key], int(link.status()["state"] == "connected"))
        yield frames
        yield acks
        yield reconnects
        yield up

    def _senders(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        senders = self.bridge.senders
        sent = CounterMetricFamily(
            f"{PREFIX}_messages_sent", "Alerts delivered to DingTalk.", labels=["target"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_send_failures",
            "Failed calls to DingTalk, by target, reason and errcode.",
            labels=["target", "reason", "errcode"],
        )
        simple: dict[str, tuple[str, Callable[[TargetSender], int]]] = {
            "calls": ("DingTalk API calls made.", lambda s: s.stats.calls),
            "retries": ("Messages scheduled for another try.", lambda s: s.stats.retries),
            "dead_letters": ("Messages given up on.", lambda s: s.stats.dead_letters),
            "digests": ("Digest messages made from a backlog.", lambda s: s.stats.digests),
            "internal_errors": (
                "Messages dead-lettered because of an error of the bridge's own (reason internal).",
                lambda s: s.stats.internal_errors,
            ),
            "rate_limit_waits": (
                "Waits for the rate window or a lockout.",
                lambda s: s.stats.rate_waits,
            ),
        }
        families = {
            key: CounterMetricFamily(f"{PREFIX}_{key}", text, labels=["target"])
            for key, (text, _) in simple.items()
        }
        for name, sender in sorted(senders.items()):
            sent.add_metric([name], sender.stats.delivered)
            for (reason, errcode), count in sorted(dict(sender.stats.failures).items()):
                failed.add_metric([name, reason, errcode], count)
            for key, (_, read) in simple.items():
                value = read(sender)
                if key == "dead_letters":
                    # A work notice nobody received is given up on by the notice poller, later:
                    # the same dead letter to whoever watches this counter.
                    value += self.bridge.notice_poller.stats.outcomes.get((name, "dead"), 0)
                families[key].add_metric([name], value)
        held = GaugeMetricFamily(
            f"{PREFIX}_sender_unrecorded",
            "1 while a target holds an outcome the store could not record (it sends nothing).",
            labels=["target"],
        )
        for name, sender in sorted(senders.items()):
            held.add_metric([name], int(sender.status()["unrecorded"] is not None))
        yield sent
        yield failed
        yield from families.values()
        yield held

    def _notices(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Work notices: what getsendresult said (delivery/noticepoll.py)."""
        poller = self.bridge.notice_poller
        stats = poller.stats
        yield _counter(
            "work_notice_results",
            "Work notices settled by what getsendresult said, by target and outcome (delivered,"
            " partial, dead, retry, unverified).",
            ["target", "outcome"],
            stats.outcomes,
        )
        yield _counter(
            "work_notice_recipients_received",
            "Work notice recipients DingTalk delivered to.",
            ["target"],
            stats.received,
        )
        yield _counter(
            "work_notice_recipients_refused",
            "Work notice recipients DingTalk did not deliver to, by target and errcode (143105"
            " daily limit, invalid_user, failed, ...).",
            ["target", "errcode"],
            stats.refused,
        )
        yield _counter(
            "work_notice_result_failures",
            "getsendresult calls that failed, by target and reason.",
            ["target", "reason"],
            stats.failures,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_work_notice_result_calls", "getsendresult calls made.", value=stats.calls
        )

    def _app_robot(self) -> Iterator[CounterMetricFamily]:
        """The v1.0 API (dingtalk/openapi.py): calls and throttled answers per API, and the
        users app robots' one-to-one sends did not reach, by why."""
        v1 = self.bridge.client.v1
        yield _counter("app_robot_calls", "v1.0 API calls made, by API path.", ["api"], v1.calls)
        yield _counter(
            "app_robot_throttled",
            "v1.0 API calls DingTalk answered with a throttling error (QPS, send.too.fast, HTTP"
            " 429), by API path.",
            ["api"],
            v1.throttled,
        )
        yield _counter(
            "app_robot_refused_users",
            "Users an app robot's one-to-one send did not reach, by why (invalid,"
            " flow_controlled, filtered).",
            ["reason"],
            v1.refused_users,
        )
        yield _counter(
            "card_clicks",
            "Clicks on interactive cards' buttons over Stream mode, by outcome (done, refused,"
            " not_allowed, taken_before, unknown_card, unknown_action, bad_click).",
            ["outcome"],
            self.bridge.card_clicks.snapshot(),
        )

    def _escalations(self) -> Iterator[CounterMetricFamily]:
        """Escalation steps this process sent, and escalations it saw stopped (each counted by
        the one replica whose store write took it: pipeline/escalator.py)."""
        sent, stopped = self.bridge.escalator.snapshot()
        yield _counter(
            "escalation_steps_sent",
            "Escalation steps queued for their targets, by rule.",
            ["rule"],
            sent,
        )
        yield _counter(
            "escalations_stopped",
            "Escalations stopped before their last step, by why (ack: acknowledged, any path;"
            " resolve: the alert resolved).",
            ["why"],
            stopped,
        )

    def _awaiting(self) -> Iterator[GaugeMetricFamily]:
        """Read from the store: the same in every worker, not added up."""
        with self.bridge.store.reading() as tx:
            waiting = tx.notices.waiting()
            escalating = len(tx.escalations.running())
        awaiting = GaugeMetricFamily(
            f"{PREFIX}_work_notice_awaiting_result",
            "Work notices DingTalk took whose recipients are not known yet.",
            labels=["target"],
        )
        for target in sorted(self.bridge.config.app_targets()):
            awaiting.add_metric([target], waiting.get(target, 0))
        yield awaiting
        yield GaugeMetricFamily(
            f"{PREFIX}_escalations_running",
            "Alerts whose escalation runs (firing, not acknowledged, steps left or not).",
            value=escalating,
        )

    def _outbox(self, details: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_pending", "Messages waiting, per target.", labels=["target"]
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Age of the oldest waiting message.",
            labels=["target"],
        )
        claimed = GaugeMetricFamily(
            f"{PREFIX}_outbox_claimed",
            "Waiting messages a replica holds and is sending now, per target.",
            labels=["target"],
        )
        for name, queue in sorted(details["queues"].items()):
            depth.add_metric([name], queue["pending"])
            age.add_metric([name], queue["oldest_age_seconds"] or 0.0)
            claimed.add_metric([name], queue["claimed"])
        yield depth
        yield age
        yield claimed
        yield GaugeMetricFamily(
            f"{PREFIX}_dead_letters_stored",
            "Dead letters in the outbox.",
            value=details["store"]["dead_letters"],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_store_writable",
            "1 if the state store takes commits.",
            value=int(details["store"]["writable"]),
        )

    def _files(
        self, statuses: dict[str, dict[str, Any]]
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lag = GaugeMetricFamily(
            f"{PREFIX}_tail_lag_bytes",
            "Bytes not read yet, per followed file.",
            labels=["input", "path"],
        )
        lag_lines = GaugeMetricFamily(
            f"{PREFIX}_tail_lag_lines",
            "Complete lines not read yet, per followed file (counted in up to 8 MiB of a file and"
            " 64 MiB of an input, estimated past that).",
            labels=["input", "path"],
        )
        lines = CounterMetricFamily(
            f"{PREFIX}_tail_lines_matched", "Lines that matched a pattern.", labels=["input"]
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_file_input_up",
            "1 while the file input runs (0 while it is starting, retrying or failing).",
            labels=["input"],
        )
        for name, status in sorted(statuses.items()):
            for f in status["files"]:
                lag.add_metric([name, f["path"]], max(0, f["size"] - f["offset"]))
                lag_lines.add_metric([name, f["path"]], f["lines_behind"])
            lines.add_metric([name], status["lines_matched"])
            up.add_metric([name], int(status["state"] == "running"))
        yield lag
        yield lag_lines
        yield lines
        yield up

    def _config(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        bridge = self.bridge
        last = bridge.reloader.last_reload or {}
        yield GaugeMetricFamily(
            f"{PREFIX}_config_last_reload_successful",
            "1 if the last reload worked (or none was tried yet).",
            value=0 if last.get("result") == "failed" else 1,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_config_loaded_timestamp_seconds",
            "When the running config was loaded.",
            value=bridge.loaded_at.timestamp(),
        )
        yield InfoMetricFamily(
            f"{PREFIX}_config", "The running config.", {"hash": bridge.config.digest[:12]}
        )
        limit = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_calls",
            "Calls a target may make per rate_limit window (0: unlimited): for an app_robot the"
            " assumed 20 QPS per API per app unless configured.",
            labels=["target"],
        )
        window = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_window_seconds",
            "The length of each target's rate_limit window.",
            labels=["target"],
        )
        for name, target in sorted(bridge.config.targets.items()):
            limit.add_metric([name], target.policy.rate.messages)
            window.add_metric([name], target.policy.rate.per)
        yield limit
        yield window


def _counter(
    name: str, text: str, labels: list[str], counts: Mapping[Any, int]
) -> CounterMetricFamily:
    """A labelled counter family from counts keyed by its label value (a tuple for several)."""
    family = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=labels)
    for key, count in sorted(dict(counts).items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
    return family


def as_samples(families: Iterable[Metric]) -> list[Any]:
    """Families as JSON-able lists (a worker's snapshot): name, type, help, samples."""
    return [
        [f.name, f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]]
        for f in families
    ]


def add_up(own: list[Metric], siblings: Sequence[list[Any]]) -> Iterator[Metric]:
    """Each of `own` families with the same family's samples of every sibling added, sample by
    sample (name and labels). A series only a sibling has (the file inputs of worker 0) is
    there too; families only a sibling has (another version mid-upgrade) are left out."""
    theirs: dict[str, list[list[Any]]] = {}
    for snapshot in siblings:
        for name, _type, _text, samples in snapshot:
            theirs.setdefault(name, []).extend(samples)
    for family in own:
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        everyone = [[s.name, s.labels, s.value] for s in family.samples]
        for name, labels, value in everyone + theirs.get(family.name, []):
            key = (name, tuple(sorted(labels.items())))
            totals[key] = totals.get(key, 0.0) + float(value)
        merged = Metric(family.name, family.documentation, family.type)
        for (name, labels), value in sorted(totals.items()):
            merged.add_sample(name, dict(labels), value)
        yield merged


def render(bridge: Bridge, siblings: Sequence[list[Any]] = ()) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(bridge, siblings))
    return bytes(generate_latest(registry))
