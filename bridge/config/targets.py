"""The `targets` section: robots and work notices, each with its send policy."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge.config import model as m
from bridge.config.context import CompileContext, as_dict, as_strs
from bridge.config.yamlsource import PathKey


def compile_policy(
    ctx: CompileContext,
    where: PathKey,
    spec: dict[str, Any],
    robot: bool,
    default_rate: m.RateLimit | None = None,
) -> m.SendPolicy:
    # What the target leaves out comes from SendPolicy's defaults (written only there).
    base = m.SendPolicy(rate=default_rate or (m.ROBOT_RATE if robot else m.NO_RATE))
    rate_spec = as_dict(spec.get("rate_limit"))
    messages = rate_spec.get("messages", base.rate.messages)
    rate = m.RateLimit(
        messages if isinstance(messages, int) else base.rate.messages,
        ctx.duration((*where, "rate_limit", "per"), rate_spec.get("per"), base.rate.per),
    )
    digest = as_dict(spec.get("digest"))
    # Merging starts, by default, once more are queued than one rate window can send.
    after = digest.get("after", rate.messages if rate.messages > 0 else base.digest_after)
    most = digest.get("max_alerts", base.digest_max)
    retry = as_dict(spec.get("retry"))
    return m.SendPolicy(
        rate=rate,
        lockout=ctx.duration((*where, "lockout"), spec.get("lockout"), base.lockout),
        digest=digest.get("enabled", base.digest) is not False,
        digest_after=after if isinstance(after, int) else base.digest_after,
        digest_max=most if isinstance(most, int) else base.digest_max,
        split=spec.get("oversize", "split") != "truncate",
        retry_initial=ctx.duration(
            (*where, "retry", "initial"), retry.get("initial"), base.retry_initial
        ),
        retry_max=ctx.duration((*where, "retry", "max"), retry.get("max"), base.retry_max),
        give_up_after=ctx.duration(
            (*where, "retry", "give_up_after"), retry.get("give_up_after"), base.give_up_after
        ),
        quota_wait=ctx.duration(
            (*where, "retry", "quota_wait"), retry.get("quota_wait"), base.quota_wait
        ),
    )


def compile_targets(ctx: CompileContext, specs: dict[str, Any]) -> dict[str, m.Target]:
    out: dict[str, m.Target] = {}
    for name, raw in specs.items():
        spec, where = as_dict(raw), ("targets", name)
        timeout = ctx.duration((*where, "timeout"), spec.get("timeout"), m.DEFAULT_TIMEOUT)
        queue_size = spec.get("queue_size", m.DEFAULT_QUEUE_SIZE)
        queue_size = queue_size if isinstance(queue_size, int) else m.DEFAULT_QUEUE_SIZE
        kind = spec.get("type")
        if kind == "robot":
            webhook = ctx.secret(where, spec, "webhook", required=True)
            if webhook and not _has_access_token(webhook):
                field = "webhook" if "webhook" in spec else "webhook_file"
                ctx.problem(
                    (*where, field),
                    "the webhook URL has no access_token parameter",
                    "copy the whole URL from the robot's settings",
                )
            out[name] = m.RobotTarget(
                name=name,
                webhook=webhook or "",
                secret=ctx.secret(where, spec, "secret", required=False),
                keywords=as_strs(spec.get("keywords")),
                mention_line=spec.get("mention_line") is True,
                timeout=timeout,
                queue_size=queue_size,
                policy=compile_policy(ctx, where, spec, robot=True),
            )
        elif kind == "work_notice":
            userids, dept_ids = as_strs(spec.get("userids")), as_strs(spec.get("dept_ids"))
            to_all = spec.get("to_all_user") is True
            if not (userids or dept_ids or to_all or spec.get("recipients")):
                ctx.problem(
                    where,
                    "a work notice needs recipients",
                    "set userids, dept_ids, recipients or to_all_user: true",
                )
            agent_id = spec.get("agent_id")
            out[name] = m.WorkNoticeTarget(
                name=name,
                app_key=str(spec.get("app_key", "")),
                app_secret=ctx.secret(where, spec, "app_secret", required=True) or "",
                agent_id=agent_id if isinstance(agent_id, int) else 0,
                userids=userids,
                dept_ids=dept_ids,
                to_all_user=to_all,
                api_base=str(spec.get("api_base", m.DEFAULT_API_BASE)).rstrip("/"),
                timeout=timeout,
                queue_size=queue_size,
                policy=compile_policy(ctx, where, spec, robot=False),
            )
        elif kind == "app_robot":
            out[name] = compile_app_robot(ctx, where, name, spec, timeout, queue_size)
    return out


def compile_app_robot(
    ctx: CompileContext,
    where: PathKey,
    name: str,
    spec: dict[str, Any],
    timeout: float,
    queue_size: int,
) -> m.AppRobotTarget:
    """`type: app_robot`: one group or some users, never both (every problem reported)."""
    app_key = str(spec.get("app_key", ""))
    conversation = spec.get("open_conversation_id")
    userids = as_strs(spec.get("userids"))
    if conversation and userids:
        ctx.problem(
            where,
            "an app_robot target sends to a group or to users, not both",
            "keep open_conversation_id (a group) or userids (one-to-one); make two targets"
            " for both",
        )
    elif not conversation and not userids:
        ctx.problem(
            where,
            "an app_robot target needs recipients",
            "set open_conversation_id (a group the robot is in) or userids (one-to-one)",
        )
    if len(userids) > m.MAX_APP_ROBOT_USERS:
        ctx.problem(
            (*where, "userids"),
            f"{len(userids)} users: at most {m.MAX_APP_ROBOT_USERS} per app_robot target"
            f" (every {m.APP_ROBOT_BATCH} are another call against the app's rate limit)",
            "send to a group (open_conversation_id) or use a work_notice target to reach"
            " many people",
        )
    repeated = sorted({u for u in userids if userids.count(u) > 1})
    if repeated:
        ctx.problem(
            (*where, "userids"), f"user ids listed twice: {', '.join(repeated)}", "list each once"
        )
    robot_code = spec.get("robot_code")
    return m.AppRobotTarget(
        name=name,
        app_key=app_key,
        app_secret=ctx.secret(where, spec, "app_secret", required=True) or "",
        robot_code=str(robot_code) if robot_code else app_key,
        open_conversation_id=str(conversation) if conversation else None,
        userids=userids,
        api_base=str(spec.get("api_base", m.DEFAULT_OPENAPI_BASE)).rstrip("/"),
        timeout=timeout,
        queue_size=queue_size,
        policy=compile_policy(ctx, where, spec, robot=False, default_rate=m.APP_ROBOT_RATE),
        card_template_id=str(spec.get("card_template_id") or ""),
    )


def _has_access_token(url: str) -> bool:
    return bool(parse_qs(urlsplit(url).query).get("access_token", [""])[0])
