"""Typed reads of what create_app and the lifespan put on `app.state`.

Each thing on app.state has one typed accessor, next to its type (`runtime.installed_runtime`,
`auth.api_tokens_of`, `vnc.viewer.vnc_tokens_of`, ...); they all read through `read`, so no
module reaches into app.state by name with getattr.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def read(app: Any, name: str, kind: type[T]) -> T | None:
    """`app.state.<name>`, or None when nothing put it there; TypeError if it is not a `kind`."""
    value = getattr(app.state, name, None)  # the one place that reads app.state by name
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}")
    return value
