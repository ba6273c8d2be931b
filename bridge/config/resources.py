"""Where the bundled schema and templates are.

In the repository they sit at the top level (`schemas/`, `templates/`), where operators and editors
look for them; a built wheel ships them inside the package as `bridge/schemas` and
`bridge/templates` (see pyproject's package-dir). Running from a checkout finds the former.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """The directory of bundled data `name` ("schemas" or "templates")."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
