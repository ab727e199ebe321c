"""Commands that live outside the product, found through the `jitbot.commands` entry point group (e.g. the demo).

The product never imports the dev kit (an import-linter contract says so): the dev kit registers its commands as
entry points in pyproject.toml, and the command line loads them by name when someone asks for them."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

GROUP = "jitbot.commands"
_INSTALL_HINT = (
    "it ships in jitbot's dev kit, with the `demo` extra's dependencies: install `pip install 'jitbot[demo]'` "
    "(in a source checkout: `pip install -e '.[demo]'`) and run it again"
)


class CommandUnavailable(Exception):
    """The command is not installed (or its package cannot be imported); the message says what to install."""


def load_command(name: str) -> Callable[..., Any]:
    """The callable registered as `name` in the `jitbot.commands` group."""
    found = [point for point in entry_points(group=GROUP) if point.name == name]
    if not found:
        raise CommandUnavailable(f"`jitbot {name}` is not installed: {_INSTALL_HINT}")
    try:
        command = found[0].load()
    except ImportError as error:  # registered, but its package (or one of its dependencies) is missing
        raise CommandUnavailable(f"`jitbot {name}` cannot start ({error}): {_INSTALL_HINT}") from None
    if not callable(command):
        raise CommandUnavailable(f"`jitbot {name}` is registered as {found[0].value}, which is not callable")
    return command  # type: ignore[no-any-return]
