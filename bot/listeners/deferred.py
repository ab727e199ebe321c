"""Carries out the tasks listeners leave for after their ack, wherever they run (this process or the worker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot import blocks
from bot.gate import SlackBody
from bot.listeners import actions, asking, commands
from bot.tasks import Task, click, decode, verb
from grants.inbox import Work

if TYPE_CHECKING:
    from bot.context import BotContext  # the context runs the listeners' deferred work: no import at run time


def run(ctx: BotContext, task: Task) -> None:
    args = task.args
    if task.kind == "click":
        actions.run_click(ctx, args["body"])
    elif task.kind == "verb":
        commands.run_verb(
            ctx, ctx.responder(args["response_url"]), str(args["user"]), str(args["verb"]), [str(a) for a in args["args"]]
        )
    elif task.kind == "request":
        asking.run(ctx, args)
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


def work_of(ctx: BotContext) -> Callable[[SlackBody], Work | None]:
    """What a verified body asks for after its ack, known before any listener runs (pure): a deferred click, or a
    subcommand carried out later, or a new request (from the command or the form) that the catalog alone allows,
    under an ID made now. The gate records it in the inbox with the request, so an acked click, revoke or request
    survives a crash; the listener then only acks."""

    def of(parsed: SlackBody) -> Work | None:
        data = parsed.data
        if parsed.kind == "interactive" and data.get("type") == "block_actions":
            action = data["actions"][0]["action_id"]
            task = click(data) if action in actions.DEFERRED else None
        elif parsed.kind == "command" and data.get("command") == ctx.command and parsed.user:
            text = (data.get("text") or "").strip()
            found = commands.deferred_verb(text)
            task = verb(parsed.user, found[0], found[1], data.get("response_url")) if found else None
            task = task or asking.from_command(ctx, parsed.user, text, data.get("response_url"))
        elif parsed.kind == "interactive" and data.get("type") == "view_submission" and parsed.user:
            view = data.get("view") or {}
            task = asking.from_form(ctx, parsed.user, view) if view.get("callback_id") == blocks.REQUEST_MODAL else None
        else:
            task = None
        return Work(task.kind, task.args) if task else None

    return of


def task_of(work: Work) -> Task:
    return decode({"task": work.kind, "args": work.args})
