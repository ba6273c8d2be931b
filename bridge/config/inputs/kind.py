"""What an input kind tells the config compiler, and what every compiled input has.

A kind is data, not a class hierarchy: the compiler looks a definition's `type` up in the
registry and calls the kind's `compile`; the rules compiler asks the kinds of a rule's inputs
which template variables their events offer, which title and body to show when the rule gives
none, and whether their source repeats notifications itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2.sandbox import SandboxedEnvironment

from bridge.config.context import CompileContext
from bridge.config.yamlsource import PathKey


class InputSpec(Protocol):
    """A compiled input definition (a frozen dataclass of its kind's module)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def definition(self) -> str:
        """Canonical JSON of the raw definition: equal text, unchanged input."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Its secret values, for redaction at the logging boundary."""
        ...


class RoutedSpec(InputSpec, Protocol):
    """An input served on the HTTP listener at `path`."""

    @property
    def path(self) -> str: ...

    @property
    def max_body_bytes(self) -> int: ...


@dataclass(frozen=True)
class Definition:
    """One entry of `inputs:` as its kind's compiler sees it."""

    name: str
    spec: dict[str, Any]  # the raw mapping (any shape: the schema reports what is wrong)
    where: PathKey  # ("inputs", name): where its problems point
    env: SandboxedEnvironment  # compiles its templates
    server_max_body: int  # server.max_body_bytes, the default of an HTTP input's limit


@dataclass(frozen=True)
class InputKind:
    type: str  # the `type:` that selects it
    compile: Callable[[CompileContext, Definition], InputSpec]
    routed: bool  # served on the HTTP listener at its `path` (checked unique, not reserved)
    variables: frozenset[str] = frozenset()  # what its events add to rule templates' variables
    default_title: str | None = None  # a rule fed only by this kind, without a title
    default_body: str = "webhook"  # its bundled body template (templates/<this>.md.j2)
    repeats_itself: bool = False  # its source decides repeats: rules default repeat_interval 0
    # The path a routed kind serves for its configured `path` (a prometheus input: the prefix
    # and Alertmanager's endpoint under it); the compiled input's `path` is this.
    route: Callable[[str], str] = str
