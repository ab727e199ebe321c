"""The App Home tab: one person's grants, pending requests and what waits on them, rendered from current state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.blocks import CANCEL, DONE, NUDGE, Block, button, decide_buttons, review_buttons, status_line
from bot.messages import esc, when
from bot.slack_limits import CONTEXT_TEXT, SECTION_TEXT, clip
from grants.domain import Request, State, ends_in
from grants.durations import format_duration
from grants.service import ElevationService

# A Home view holds at most 100 blocks (Slack rejects a bigger one and the tab goes stale), so every
# list is capped; the rest is one `list` away. Worst case, every list full: 3 + (1+10+1) + (1+10+1)
# + (2+40+1) + (2+20+1) + 2 = 95 blocks.
MAX_GRANTS = 10  # one block each
MAX_PENDING = 5  # two blocks each (the request, its Nudge button)
MAX_WAITING = 20  # two blocks each (the request, Approve/Deny)
MAX_REVIEWS = 10  # two blocks each (the break-glass use, Acknowledge/Flag)


def renderer(service: ElevationService) -> Callable[[str], dict[str, Any]]:
    """The SlackNotifier's `home`: renders a user's Home tab from the service's queries."""

    def render(user: str) -> dict[str, Any]:
        auditor = user in service.people.auditors()
        return home_view(
            service.mine(user), service.waiting_on(user), auditor, service.clock.now(), service.catalog.settings.command,
            [r for r in service.open_reviews(user) if r.requester != user],  # nobody reviews their own break-glass
        )  # fmt: skip

    return render


def home_view(
    mine: list[Request],
    waiting: list[Request],
    auditor: bool,
    now: datetime,
    command: str,
    reviews: list[Request] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    active = [r for r in mine if r.state in (State.APPROVED, State.ACTIVE)]
    pending = [r for r in mine if r.state is State.PENDING]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Just-in-time access"}},
        _context(f"Updated {when(now)} · `{command}` opens the request form · `{command} help` shows everything"),
        {"type": "divider"},
        _section("*Your active grants*"),
        *(
            [_grant(r, now) for r in active[:MAX_GRANTS]]
            or [_context("None. Access you are granted shows up here with the time it has left.")]
        ),
        *_more(len(active), MAX_GRANTS, command),
        _section("*Your pending requests*"),
        *(
            [b for r in pending[:MAX_PENDING] for b in (_pending(r), _nudge(r))]
            or [_context(f"None. Type `{command}` to ask for access.")]
        ),
        *_more(len(pending), MAX_PENDING, command),
    ]
    if waiting:
        blocks += [{"type": "divider"}, _section(f"*Waiting on you* ({len(waiting)})")]
        for r in waiting[:MAX_WAITING]:
            blocks += [_asks(r), decide_buttons(r)]
        blocks += _more(len(waiting), MAX_WAITING, command)
    if reviews:
        blocks += [{"type": "divider"}, _section(f"*Open break-glass reviews* ({len(reviews)})")]
        for r in reviews[:MAX_REVIEWS]:
            blocks.append(
                _section(
                    f"<@{r.requester}> took `{r.scope}` · `{r.id}` · review due {when(r.review.due_at if r.review else None)}\n>{esc(r.reason)}"
                )
            )
            blocks.append(review_buttons(r.id))
        blocks += _more(len(reviews), MAX_REVIEWS, command, "reviews")
    if auditor:
        blocks += [
            {"type": "divider"},
            _section(
                f"*Audit trail* — you are an auditor.\n`{command} audit --since 7d` uploads the trail to our DM as CSV "
                f"(add `--format jsonl` for JSON lines). From a shell: `jitbot audit export --format csv -o trail.csv`, "
                f"and `jitbot audit verify` checks the hash chain."
            ),
        ]
    return {"type": "home", "blocks": blocks}


def _more(count: int, shown: int, command: str, verb: str = "list") -> list[Block]:
    """The line under a capped list: how many did not fit and the command that shows them all."""
    return [_context(f"…and {count - shown} more: `{command} {verb}` shows them all.")] if count > shown else []


def _section(markdown: str, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(markdown, SECTION_TEXT)}}
    return {**block, "accessory": accessory} if accessory else block


def _context(markdown: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(markdown, CONTEXT_TEXT)}]}


def _left(request: Request, now: datetime) -> str:
    left = ends_in(request, now)
    if left >= timedelta(minutes=1):
        left = timedelta(minutes=round(left.total_seconds() / 60))
    return format_duration(left)


def _grant(request: Request, now: datetime) -> Block:
    head = f"`{request.scope}` · `{request.id}`"
    if request.state is State.APPROVED:
        return _section(f"{head}\nApproved; the credential is being issued.")
    text = f"{head}\n*{_left(request, now)} left* (until {when(request.expires_at)})"
    return _section(text, button("I'm done", DONE, request.id))


def _pending(request: Request) -> Block:
    text = (
        f"`{request.scope}` for {format_duration(request.duration)} · `{request.id}`\n"
        f"{len(request.approvals)} of {request.approval.required} approval(s) · ends at {when(request.pending_until)} if undecided"
    )
    return _section(text, button("Cancel request", CANCEL, request.id))


def _nudge(request: Request) -> Block:
    return {"type": "actions", "block_id": f"nudge:{request.id}", "elements": [button("Nudge approvers", NUDGE, request.id)]}


def _asks(request: Request) -> Block:
    if request.extension_pending:
        asks = f"asks for {format_duration(request.extension_pending)} more of `{request.scope}`"
    else:
        asks = f"asks for `{request.scope}` for {format_duration(request.duration)}"
    reason = f"\n>{esc(request.reason)}" if request.reason else ""
    return _section(f"<@{request.requester}> {asks} · `{request.id}`{reason}\n{status_line(request)}")
