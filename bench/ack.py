"""Ack latency at 50 in flight: signed slash commands and button clicks, the real bot against a bare Bolt app that only
acks, and against the same app doing one durable insert per request (the floor of a replay-proof, crash-proof ack)."""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import Ack, App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bench.core import APPROVER, BOT_TOKEN, SCOPE, SIGNING_SECRET, Figure, Lab, p50, p99, say, wait_until
from bench.loadgen import drive
from bench.seed import StateCounter
from bench.slack_bodies import BodyRecorder
from bench.slack_proc import SlackProc
from bot import blocks
from bot.web import WebApp, serve
from devkit.harness import LocalBot, free_port
from grants.adapters.inbox_store import SqlInbox
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.domain import State

NAME = "ack"
CONCURRENCY = 50
OPEN_RATE = 50.0  # requests/s of the open loop, sent on schedule whatever the answers
OPEN_THREADS = 200  # senders of the open loop: enough that a slow server never slows the schedule
KINDS = ("list", "request", "click")
LABELS = {"list": "/elevate list", "request": "/elevate <scope> (new request)", "click": "Approve click"}


def bare_app(slack_url: str, record: Callable[[BoltRequest], None] = lambda _: None) -> App:
    """The baseline: a Bolt app with the same signing, authorization style and ack mode, whose listeners only ack
    (after `record`: the durable baseline's one insert)."""

    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=BOT_TOKEN)

    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=slack_url),
        signing_secret=SIGNING_SECRET,
        authorize=authorize,
        token_verification_enabled=False,
        process_before_response=False,
    )

    @app.command("/elevate")
    def command(ack: Ack, request: BoltRequest) -> None:
        record(request)
        ack()

    @app.action(re.compile(".*"))
    def action(ack: Ack, request: BoltRequest) -> None:
        record(request)
        ack()

    return app


@contextmanager
def durable_insert(lab: Lab) -> Iterator[Callable[[BoltRequest], None]]:
    """The physical floor of a replay-proof, crash-proof ack: one durable insert per request, the inbox's own (the
    signed request's key, committed), on a fresh database of the same kind as the bot's."""
    with lab.database(f"{NAME}-floor") as database_url:
        engine = make_engine(database_url)
        upgrade(engine)
        store = SqlStore(engine)
        inbox = SqlInbox(store)

        def record(request: BoltRequest) -> None:
            signed = f"{request.headers['x-slack-request-timestamp'][0]}\x1f{request.headers['x-slack-signature'][0]}"
            now = datetime.now(UTC)
            inbox.receive(hashlib.sha256(signed.encode()).hexdigest(), now + timedelta(minutes=6), None, None, now)

        try:
            yield record
        finally:
            store.close()


@contextmanager
def serving_bare(slack_url: str, record: Callable[[BoltRequest], None] = lambda _: None) -> Iterator[str]:
    """The bare app behind the same waitress server (bot.web.serve, same thread count) the bot uses."""
    port = free_port()
    server = serve(WebApp(bare_app(slack_url, record), lambda: {"app": True}), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, name="bare-bolt-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        server.close()
        thread.join(timeout=5)


def _workload(recorder: BodyRecorder, bot: LocalBot, per_kind: int, tag: str) -> list[tuple[str, str]]:
    """`per_kind` of each kind, shuffled: list by requesters with a pending request, new requests, Approve clicks."""
    assert bot.runtime is not None
    service, store, catalog = bot.runtime.service, bot.runtime.store, bot.runtime.catalog
    targets = [service.request(f"U0C{tag}{i:05d}", SCOPE, "30m", f"bench click target {i}") for i in range(per_kind)]
    # Every approval message is posted (and its reference stored) before anyone clicks, whichever process posts it.
    wait_until(lambda: all(store.message_refs(t.id) for t in targets), 180, "the approval messages to be posted", 0.2)
    items: list[tuple[str, str]] = []
    for i, target in enumerate(targets):
        channel, ts, _ = store.message_refs(target.id)[0]
        text, body = blocks.approval_message(target, catalog)
        items.append(("click", recorder.click_body(APPROVER, "approve", target.id, channel, ts, {"text": text, "blocks": body})))
        items.append(("list", recorder.slash_body(target.requester, "list")))
        items.append(("request", recorder.slash_body(f"U0R{tag}{i:05d}", f"{SCOPE} 30m INC-{i} bench request {tag}")))
    random.Random(4).shuffle(items)
    return items


def _run_load(
    lab: Lab, url: str, recorder: BodyRecorder, items: list[tuple[str, str]], label: str, rate: float | None = None
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """Latencies by kind (every answer counts, failures included) and, by kind, how many were not a 200.
    Closed loop of CONCURRENCY clients, or with `rate` an open loop sending on a fixed schedule."""
    spec = {
        "url": url,
        "concurrency": OPEN_THREADS if rate else CONCURRENCY,
        "rate": rate,
        "timeout": 15,
        "requests": [[kind, body, recorder.signed(body)] for kind, body in items],
    }
    report = drive(spec, lab.workdir / f"load-{label.replace(' ', '-')}.json")
    if report["missing"]:
        raise RuntimeError(f"{label}: {report['missing']} requests got no answer at all")
    by_kind: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "all")}
    failed: dict[str, int] = dict.fromkeys((*KINDS, "all"), 0)
    statuses: dict[int, int] = {}
    for kind, millis, status in report["results"]:
        for key in (kind, "all"):
            by_kind[key].append(millis)
            failed[key] += status != 200
        statuses[status] = statuses.get(status, 0) + 1
    answered = len(report["results"])
    codes = ", ".join(f"{count}x HTTP {status}" for status, count in sorted(statuses.items()))
    say(f"{label}: {answered} requests in {report['wall']:.1f}s ({answered / report['wall']:.0f}/s): {codes}")
    return by_kind, failed, float(report["wall"])


def _measure_bot(
    lab: Lab, slack: SlackProc, recorder: BodyRecorder
) -> tuple[Measured, Measured, list[tuple[str, str]], list[tuple[str, str]]]:
    """The closed loop and the open loop against the bot (`jitbot serve`: web side and worker in one process); the
    workloads, for the same bodies to be sent to the bare app."""
    per_kind, warm = lab.size(200, 20), lab.size(30, 5)
    shape = "serve"
    with lab.database(f"{NAME}-serve") as database_url:
        bot = lab.bot(database_url, slack.url).start()
        counter = StateCounter(database_url)
        try:
            warm_items = _workload(recorder, bot, warm, "W")
            items = _workload(recorder, bot, per_kind, "M")
            open_items = _workload(recorder, bot, per_kind, "O")
            say(f"{shape}: seeded {per_kind + warm} pending requests through the service; {3 * per_kind} measured requests")
            _run_load(lab, bot.url + "/slack/events", recorder, warm_items, f"bot ({shape}) warm-up")
            closed = _run_load(lab, bot.url + "/slack/events", recorder, items, f"bot ({shape})")
            # Every click's approval (Vault issue, Slack DMs) runs after its ack; let it finish before the next load.
            wait_until(lambda: counter.count(State.ACTIVE) >= per_kind + warm, 180, "every clicked request to be issued", 0.2)
            wait_until(lambda: counter.unsent() == 0, 180, "the outbox to be empty", 0.2)
            opened = _run_load(lab, bot.url + "/slack/events", recorder, open_items, f"bot ({shape}) open loop", OPEN_RATE)
            wait_until(lambda: counter.count(State.ACTIVE) >= 2 * per_kind + warm, 180, "the open loop's clicks issued", 0.2)
            wait_until(lambda: counter.unsent() == 0, 180, "the outbox to be empty", 0.2)
        finally:
            counter.close()
            bot.stop()
    return closed, opened, warm_items, items + open_items


Measured = tuple[dict[str, list[float]], dict[str, int], float]


def run(lab: Lab) -> list[Figure]:
    per_kind = lab.size(200, 20)
    with SlackProc(BOT_TOKEN) as slack:
        lab.adopt(slack)
        recorder = BodyRecorder(slack.url.removesuffix("/api/"))
        (subject, subject_failed, subject_wall), (opened, opened_failed, _), warm_items, sent = _measure_bot(lab, slack, recorder)
        items, open_items = sent[: 3 * per_kind], sent[3 * per_kind :]
        with serving_bare(slack.url) as bare_url:
            _run_load(lab, bare_url, recorder, warm_items, "bare warm-up")
            baseline, baseline_failed, baseline_wall = _run_load(lab, bare_url, recorder, items, "bare Bolt")
            bare_open, bare_open_failed, _ = _run_load(lab, bare_url, recorder, open_items, "bare open loop", OPEN_RATE)
        with durable_insert(lab) as record, serving_bare(slack.url, record) as floor_url:
            _run_load(lab, floor_url, recorder, warm_items, "bare + insert warm-up")
            floor, _, floor_wall = _run_load(lab, floor_url, recorder, items, "bare Bolt + one durable insert")
            floor_open, floor_open_failed, _ = _run_load(
                lab, floor_url, recorder, open_items, "bare + insert open loop", OPEN_RATE
            )
    figures = [
        Figure(
            NAME,
            f"ack p99 at a steady {OPEN_RATE:g} requests/s vs one durable insert (all kinds)",
            "ms",
            p99(opened["all"]),
            p99(floor_open["all"]),
            "bare Bolt + one durable insert p99, same schedule",
            max_ratio=1.3,
            below=50.0,
            note=f"n={len(opened['all'])}; the floor of a replay-proof, crash-proof ack (the inbox's insert, committed)"
            + (f"; floor: {floor_open_failed['all']} failed" if floor_open_failed["all"] else ""),
        ),
        Figure(
            NAME,
            "saturation throughput vs one durable insert, same mix",
            "req/s",
            len(subject["all"]) / subject_wall,
            len(floor["all"]) / floor_wall,
            f"bare Bolt + one durable insert, {CONCURRENCY} clients closed loop",
            min_ratio=0.7,
        ),
    ]
    for kind in (*KINDS, "all"):
        label = LABELS.get(kind, "all kinds")
        # Bolt answers 404 when a listener has not acked within its 3 s ack timeout: Slack would show the user an error.
        failures = f"; {subject_failed[kind]} not acked (HTTP 404 after Bolt's 3 s ack timeout)" if subject_failed[kind] else ""
        failures += f"; bare: {baseline_failed[kind]} failed" if baseline_failed[kind] else ""
        figures.append(Figure(NAME, f"{label} p50", "ms", p50(subject[kind]), p50(baseline[kind]), "bare Bolt p50"))
        figures.append(
            Figure(
                NAME,
                f"{label} p99",
                "ms",
                p99(subject[kind]),
                p99(baseline[kind]),
                "bare Bolt p99",
                max_ratio=1.5,
                below=100.0,
                note=f"n={len(subject[kind])}, {CONCURRENCY} in flight{failures}",
            )
        )
    not_acked = f"; {opened_failed['all']} not acked" if opened_failed["all"] else ""
    per_kind_p99 = ", ".join(f"{LABELS[k]} {p99(opened[k]):.0f} vs {p99(bare_open[k]):.0f} ms" for k in KINDS)
    figures.append(
        Figure(
            NAME,
            f"ack p99 at a steady {OPEN_RATE:g} requests/s, open loop (all kinds)",
            "ms",
            p99(opened["all"]),
            p99(bare_open["all"]),
            "bare Bolt p99, same schedule",
            max_ratio=1.5,
            below=100.0,
            note=f"n={len(opened['all'])}; p99 by kind: {per_kind_p99}{not_acked}"
            + (f"; bare: {bare_open_failed['all']} failed" if bare_open_failed["all"] else ""),
        )
    )
    n = len(subject["all"])
    figures.append(
        Figure(
            NAME,
            "saturation throughput, same mix",
            "req/s",
            n / subject_wall,
            n / baseline_wall,
            f"bare Bolt, {CONCURRENCY} clients closed loop",
            min_ratio=0.5,
            note="jitbot serve: the post-ack work (Vault, database, Slack) runs in the same process's claim loops",
        )
    )
    # With 50 clients always waiting, latency is mostly queueing (Little's law: mean latency = 50 / throughput),
    # so the server's time per request is the figure that explains the percentiles above.
    n = len(subject["all"])
    figures.append(
        Figure(
            NAME,
            "time per request at saturation (wall / n)",
            "ms",
            subject_wall / n * 1000,
            baseline_wall / n * 1000,
            "bare Bolt, same load",
            note=f"{n / subject_wall:.0f} vs {n / baseline_wall:.0f} requests/s; post-ack work included",
        )
    )
    return figures
