"""`jitbot check`: the catalog and every policy file, all problems reported at once."""

from __future__ import annotations

import re
from pathlib import Path

from grants.catalog import CatalogError, load_catalog

_PATH_BLOCK = re.compile(r'path\s+"[^"]+"\s*\{[^{}]*capabilities\s*=\s*\[[^\]]*\][^{}]*\}', re.S)
_CAPABILITIES = {"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"}


def check_policy(path: Path) -> list[str]:
    """A light structural check of an ACL policy: balanced braces, path blocks, known capabilities."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    problems = []
    if text.count("{") != text.count("}"):
        problems.append(f"{path}: unbalanced braces")
    if not _PATH_BLOCK.search(text):
        problems.append(f'{path}: no `path "…" {{ capabilities = [...] }}` block')
    for capability in re.findall(r'"([a-z_-]+)"', " ".join(re.findall(r"capabilities\s*=\s*\[([^\]]*)\]", text))):
        if capability not in _CAPABILITIES:
            problems.append(f"{path}: unknown capability `{capability}`")
    return problems


def check_all(catalog_path: Path) -> list[str]:
    problems: list[str] = []
    try:
        load_catalog(catalog_path)
    except CatalogError as error:
        problems += error.problems
    for policy in sorted(catalog_path.parent.glob("*.hcl")):
        problems += check_policy(policy)
    return problems
