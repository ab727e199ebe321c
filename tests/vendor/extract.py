"""Cut a vendor's OpenAPI description down to the operations jitbot calls, keeping every component they reference.

python -m tests.vendor.extract FULL.json OUT.json 'GET /path' ['POST /other/{id}' ...] [--schema NAME ...]
The result is the vendor's own text for those operations (nothing rewritten), so stand-ins are checked against it.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def extract(spec: dict[str, Any], operations: list[str], schemas: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    paths: dict[str, Any] = {}
    for operation in operations:
        method, path = operation.split(" ", 1)
        item = spec["paths"][path]
        kept = paths.setdefault(
            path,
            {k: v for k, v in item.items() if k not in ("get", "put", "post", "delete", "patch", "head", "options", "trace")},
        )
        kept[method.lower()] = item[method.lower()]
    wanted = _refs(paths) | {f"#/components/schemas/{name}" for name in schemas}
    components: dict[str, dict[str, Any]] = {"securitySchemes": spec["components"].get("securitySchemes", {})}
    seen: set[str] = set()
    while wanted - seen:
        ref = sorted(wanted - seen)[0]
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        name = name.split("/")[0]  # a pointer into a component keeps the whole component
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        wanted |= _refs(node)
    out = {k: spec[k] for k in ("openapi", "info", "servers", "security") if k in spec}
    return out | {"paths": paths, "components": components}


def main(argv: list[str]) -> None:
    source, target, *rest = argv
    schemas = [rest[i + 1] for i, a in enumerate(rest) if a == "--schema"]
    operations = [a for i, a in enumerate(rest) if a != "--schema" and (i == 0 or rest[i - 1] != "--schema")]
    with open(source, encoding="utf-8") as f:
        spec = json.load(f)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(extract(spec, operations, schemas), f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
