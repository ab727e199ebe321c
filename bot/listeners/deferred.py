"""Carries out the tasks listeners leave for after their ack, wherever they run (this process or the worker)."""

from __future__ import annotations

from bot.context import BotContext
from bot.listeners import actions, commands
from bot.tasks import Task


def run(ctx: BotContext, task: Task) -> None:
    args = task.args
    if task.kind == "click":
        actions.run_click(ctx, args["body"])
    elif task.kind == "verb":
        commands.run_verb(
            ctx, ctx.responder(args["response_url"]), str(args["user"]), str(args["verb"]), [str(a) for a in args["args"]]
        )
    elif task.kind == "issue":
        ctx.service.issue_approved(str(args["request_id"]))
    elif task.kind == "home" and args.get("refresh"):
        ctx.notifier.refresh_home(str(args["user"]))
    elif task.kind == "home":
        ctx.notifier.show_home(str(args["user"]))
    elif task.kind == "audit_export":
        commands.run_audit_export(ctx, ctx.responder(args["response_url"]), str(args["user"]), str(args["options"]))
    else:
        raise ValueError(f"unknown task {task.kind!r}")
