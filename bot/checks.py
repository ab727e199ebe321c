"""`jitbot check`: the catalog and every policy file, all problems reported at once."""

from __future__ import annotations

import re
from pathlib import Path

from bot.slack_catalog import load_catalog
from grants.catalog import CatalogError

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


_PATH_CAPS = re.compile(r'path\s+"([^"]+)"\s*\{[^{}]*?capabilities\s*=\s*\[([^\]]*)\]', re.S)


_QUOTED = re.compile(r'"([a-z_-]+)"')


def grants_of(catalog_path: Path) -> list[str]:
    """What each scope's policies allow, path by path, so an operator sees that a "read" scope reads.
    (Vault's own `default` policy, which most tokens also carry, is not shown.)"""
    catalog = load_catalog(catalog_path)
    lines = []
    for name, scope in catalog.scopes.items():
        lines.append(f"{name} ({scope.credential}): {scope.description}")
        for policy in scope.policies_granted:
            text = "\n".join(line.split("#", 1)[0] for line in (catalog_path.parent / f"{policy}.hcl").read_text().splitlines())
            for path, caps in _PATH_CAPS.findall(text):
                capabilities = ", ".join(_QUOTED.findall(caps))
                lines.append(f"  {policy}: {path} → {capabilities}")
        if not scope.policies_granted:
            lines.append(f"  (no Vault policy: a {scope.credential} credential; see the kind's role in Vault)")
    return lines


def notes(catalog_path: Path) -> list[str]:
    """Not errors, but what an operator should know the catalog does: where its own settings are overruled."""
    try:
        catalog = load_catalog(catalog_path)
    except CatalogError:
        return []
    found = []
    for name, scope in catalog.scopes.items():
        for rule in scope.auto_approve:
            if not scope.extension_requires_approval and scope.max_extensions and scope.max_total > rule.max_duration:
                found.append(
                    f"note: scopes.{name}: grants auto-approved by rule `{rule.name or 'auto_approve'}` could self-extend to "
                    f"{scope.max_total_duration or scope.max_total} with no human; jitbot holds them to the rule's "
                    f"{rule.max_duration} unless an approver agrees"
                )
    return found


def check_all(catalog_path: Path) -> list[str]:
    problems: list[str] = []
    try:
        load_catalog(catalog_path)
    except CatalogError as error:
        problems += error.problems
    for policy in sorted(catalog_path.parent.glob("*.hcl")):
        problems += check_policy(policy)
    return problems
