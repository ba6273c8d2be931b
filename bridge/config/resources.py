"""Where the bundled schema and templates are.

In the repository they sit at the top level (`schemas/`, `templates/`, and the presets in
`examples/sources/`), where operators and editors look for them; a built wheel ships them inside
the package as `bridge/schemas`, `bridge/templates` and `bridge/sources` (see pyproject's
package-dir). Running from a checkout finds the former.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


# Where each sits in a checkout, when not at the top level.
_CHECKOUT = {"sources": Path("examples") / "sources"}


def data_dir(name: str) -> Path:
    """The directory of bundled data `name` ("schemas", "templates" or "sources": the presets)."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / _CHECKOUT.get(name, Path(name))
