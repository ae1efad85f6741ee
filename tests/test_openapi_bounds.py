"""Every integer a client can send (path, query, header, request body) has both bounds in the
OpenAPI schema: past them the answer is a 422, never a database driver's overflow (a 500)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from computer_use.config import Settings
from computer_use.main import create_app


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _integers(
    schema: dict[str, Any], document: dict[str, Any], where: str, seen: frozenset[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    ref = schema.get("$ref")
    if ref in seen:
        return
    seen = seen | {ref} if ref else seen
    schema = _resolve(schema, document)
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            yield from _integers(option, document, f"{where}[{key}{index}]", seen)
    for name, prop in schema.get("properties", {}).items():
        yield from _integers(prop, document, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integers(schema[key], document, f"{where}.{key}", seen)


def client_integers(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            for param in operation.get("parameters", []):
                where = f"{name} {param['in']} {param['name']}"
                found += _integers(param.get("schema", {}), document, where, frozenset())
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                where = f"{name} body ({media})"
                found += _integers(content.get("schema", {}), document, where, frozenset())
    return found


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()
    return schema


def test_every_integer_a_client_sends_has_both_bounds_in_the_schema(
    document: dict[str, Any],
) -> None:
    integers = client_integers(document)
    assert any("offset" in where for where, _ in integers), "the walk found nothing"
    unbounded = [
        where
        for where, schema in integers
        if ("maximum" not in schema and "exclusiveMaximum" not in schema)
        or ("minimum" not in schema and "exclusiveMinimum" not in schema)
    ]
    assert unbounded == [], f"integers without both bounds: {unbounded}"
