"""MkDocs hook: the REST reference page is generated from the application's own OpenAPI schema.

The schema comes from the same `create_app` the server runs, so the reference cannot drift
from the code: a route, parameter or response added to the API appears here on the next
build. The raw schema is published beside it as `reference/openapi.json`.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    schema = _schema()
    files.append(File.generated(config, "reference/api.md", content=_render(schema)))
    files.append(
        File.generated(config, "reference/openapi.json", content=json.dumps(schema, indent=2))
    )
    return files


def _schema() -> dict[str, Any]:
    # Building the app opens nothing (the ledger is opened in its lifespan), but settings
    # validate LEDGER_HOME: point it at a throwaway folder so a docs build touches no data.
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("LEDGER_HOME", home)
        from ledger.api.app import create_app
        from ledger.settings import Settings

        app = create_app(Settings())
        return app.openapi_schema.to_schema()


def _render(schema: dict[str, Any]) -> str:
    info = schema["info"]
    lines = [
        "# REST API reference",
        "",
        f"{info.get('description', '')} Version {info['version']}.",
        "",
        "Generated from the server's OpenAPI schema at build time "
        "([openapi.json](openapi.json); a running server serves the same schema at "
        "`/schema/openapi.json` and an explorer at `/schema/swagger`). Errors are RFC 9457 "
        "problem documents (`application/problem+json`, schema `Problem`). Behaviour, limits "
        "and examples: [the API guide](../api.md).",
        "",
    ]
    for path, operations in sorted(schema["paths"].items()):
        for method in METHODS:
            if method in operations:
                lines += _operation(method, path, operations[method])
    lines += ["## Schemas", ""]
    for name, component in sorted(schema.get("components", {}).get("schemas", {}).items()):
        lines += _component(name, component)
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [f"**{op['summary']}** (`{op.get('operationId', '')}`)", ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in params:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} "
                f"| {'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    if body:
        kinds = ", ".join(f"`{ct}` {_type(c.get('schema', {}))}" for ct, c in body.items())
        lines += [f"Request body: {kinds}", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for code, response in sorted(op.get("responses", {}).items()):
        content = response.get("content", {})
        kinds = ", ".join(f"{_type(c.get('schema', {}))}" for c in content.values()) or "none"
        lines.append(f"| {code} | {_cell(response.get('description', ''))} | {kinds} |")
    return [*lines, ""]


def _component(name: str, component: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if component.get("description"):
        lines += [component["description"].strip(), ""]
    properties = component.get("properties", {})
    if not properties:
        return [*lines, f"Type: {_type(component)}", ""]
    required = set(component.get("required", []))
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, spec in properties.items():
        lines.append(
            f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} "
            f"| {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in spec:
            return " or ".join(_type(s) for s in spec[combinator])
    kind = spec.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {_type(spec.get('items', {}))}"
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    return f"{kind} ({spec['format']})" if "format" in spec else str(kind)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
