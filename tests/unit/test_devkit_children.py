"""Every child process the dev kit starts (the demo's OpenBao, sshd, ssh, ssh-keygen, bao CLI) dies with it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTERS = {"run", "Popen", "call", "check_call", "check_output"}


def unarmed_children(source: str) -> list[int]:
    """Lines of subprocess calls without `preexec_fn=die_with_parent()`: a SIGKILLed demo would orphan them."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in STARTERS):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess"):
            continue
        armed = any(
            k.arg == "preexec_fn" and isinstance(k.value, ast.Call) and getattr(k.value.func, "id", "") == "die_with_parent"
            for k in node.keywords
        )
        if not armed:
            lines.append(node.lineno)
    return lines


def test_the_finder_sees_an_unarmed_child():
    assert unarmed_children("import subprocess\nsubprocess.run(['ssh'], timeout=20)\n") == [2]
    assert unarmed_children("subprocess.Popen(['bao'], preexec_fn=die_with_parent())\n") == []


def test_every_subprocess_the_dev_kit_starts_dies_with_it():
    found = {}
    for path in sorted(ROOT.glob("devkit/**/*.py")):
        if lines := unarmed_children(path.read_text(encoding="utf-8")):
            found[path.relative_to(ROOT).as_posix()] = lines
    assert found == {}, f"subprocesses started without preexec_fn=die_with_parent(): {found}"
