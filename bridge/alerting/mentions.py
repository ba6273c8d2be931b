"""Who a message pings: mention refs resolved through the people directory. Pure.

A ref is a person's name (`alice`), a group's (`dba`), or `oncall:<schedule>` (whoever
`on_call(schedule)` says is on call; an unknown name while no on-call lookup is wired), with an
optional leading `@`. Templates (`{{ labels.owner }}`) are rendered by the caller first
(bridge/pipeline/mentions.py): what they yield is split on commas and white space, so a label
`owner: "alice, bob"` names two people. `all` is never a ref: only a rule's `mention: {all: true}`
pings everyone, so no label can.

This is the one resolver: rules' mentions, work-notice recipients, `render`, `route` and (once
wired) escalation steps all go through `resolve_people`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.config.people import ONCALL_PREFIX, Directory, Person, mask_mobile
from bridge.model import Mention

# The names on call for a schedule, primary first (bridge/alerting/oncall.py, wired by the app);
# KeyError for a schedule that does not exist.
OnCall = Callable[[str], tuple[str, ...]]
MAX_REFS = 64  # a label naming hundreds of people is a mistake, not a page
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Resolution:
    """The people the refs reach (each once, in the order first reached), and the refs that
    named nobody (to be logged: the message goes out without them)."""

    people: tuple[Person, ...] = ()
    unknown: tuple[str, ...] = ()


def split_refs(text: str) -> list[str]:
    """What one rendered template names: `"alice, bob"` -> ["alice", "bob"]."""
    return [part for part in _SEPARATORS.split(text) if part][:MAX_REFS]


def resolve_people(
    refs: Iterable[str], directory: Directory, on_call: OnCall | None = None
) -> Resolution:
    """People and groups by name, on-call schedules through `on_call`."""
    people: dict[str, Person] = {}
    unknown: dict[str, None] = {}

    def reach(ref: str, via_oncall: bool) -> None:
        name = ref.strip().removeprefix("@")
        if not name:
            return
        if name in directory.people:
            people.setdefault(name, directory.people[name])
        elif name in directory.groups:
            for member in directory.groups[name]:
                reach(member, via_oncall)
        elif name.startswith(ONCALL_PREFIX) and on_call is not None and not via_oncall:
            try:
                on_duty = on_call(name.removeprefix(ONCALL_PREFIX))
            except KeyError:
                unknown[name] = None
                return
            for member in on_duty:
                reach(member, True)  # a schedule of schedules would be a loop: not followed
        else:
            unknown[name] = None

    for ref in list(refs)[:MAX_REFS]:
        reach(ref, False)
    return Resolution(tuple(people.values()), tuple(unknown))


def mention_of(people: Iterable[Person]) -> Mention:
    """The @-mentions for these people: the mobile when known (what robots ping most surely,
    reference §1.5), else the userid."""
    mobiles: dict[str, None] = {}
    userids: dict[str, None] = {}
    for person in people:
        if person.mobile:
            mobiles[person.mobile] = None
        elif person.userid:
            userids[person.userid] = None
    return Mention(tuple(mobiles), tuple(userids))


def resolve(refs: Iterable[str], directory: Directory, on_call: OnCall | None = None) -> Mention:
    """The interface of the issue's slices: refs -> the Mention they make."""
    return mention_of(resolve_people(refs, directory, on_call).people)


def merged(*mentions: Mention) -> Mention:
    """Mentions together, each mobile and userid once (a person reached twice pinged once)."""
    mobiles: dict[str, None] = {}
    userids: dict[str, None] = {}
    for mention in mentions:
        mobiles.update(dict.fromkeys(mention.mobiles))
        userids.update(dict.fromkeys(mention.userids))
    return Mention(tuple(mobiles), tuple(userids), any(m.all for m in mentions))


def userids_of(people: Iterable[Person]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Work-notice recipients: the userids of these people, and the names of those without
    one (a work notice cannot reach a mobile number)."""
    userids: dict[str, None] = {}
    missing: list[str] = []
    for person in people:
        if person.userid:
            userids[person.userid] = None
        else:
            missing.append(person.key)
    return tuple(userids), tuple(missing)


def describe(person: Person) -> str:
    """`alice (Alice Wang) 138****5678 userid u1`: a person as logs and the CLI show them."""
    shown = person.key if person.display == person.key else f"{person.key} ({person.display})"
    parts = [shown]
    if person.mobile:
        parts.append(mask_mobile(person.mobile))
    if person.userid:
        parts.append(f"userid {person.userid}")
    return " ".join(parts)


def describe_mention(mention: Mention) -> str:
    """A Mention as logs and the CLI show it: masked mobiles, userids, @all."""
    parts = [mask_mobile(m) for m in mention.mobiles] + [f"userid {u}" for u in mention.userids]
    if mention.all:
        parts.append("@all")
    return ", ".join(parts) if parts else "nobody"


def pinged(mention: Mention, directory: Directory) -> list[str]:
    """Who a Mention pings, as `render` and `route` show it: people by name with their masked
    mobile or userid, a number or userid nobody in `people:` has as it is (masked), `@all`."""
    by_mobile = {p.mobile: p for p in directory.people.values() if p.mobile}
    by_userid = {p.userid: p for p in directory.people.values() if p.userid}
    out: list[str] = []
    for mobile in mention.mobiles:
        person = by_mobile.get(mobile)
        out.append(f"{person.key} {mask_mobile(mobile)}" if person else mask_mobile(mobile))
    for userid in mention.userids:
        person = by_userid.get(userid)
        out.append(f"{person.key} userid {userid}" if person else f"userid {userid}")
    if mention.all:
        out.append("@all")
    return out
