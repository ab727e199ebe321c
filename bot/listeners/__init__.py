"""Bolt listeners: module-level functions taking what Bolt injects by name, plus a keyword-only `ctx`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.context import BotContext  # the context runs the listeners' deferred work: no import at run time


def bind(listener: Callable[..., Any], ctx: BotContext) -> Callable[..., Any]:
    """`listener` with its `ctx` bound. Bolt injects arguments by the names `inspect.unwrap` finds, so the
    wrapper keeps the listener's name and signature (`ctx` is keyword-only: Bolt never sees nor fills it)."""
    return update_wrapper(partial(listener, ctx=ctx), listener)
