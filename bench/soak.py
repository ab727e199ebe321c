"""`python -m bench soak`: PostgreSQL, one `jitbot web` and two `jitbot worker` processes under a steady stream of
requests, approvals, early revokes and short grants, while processes are killed -9 and Slack fails; then checks."""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import requests
from hvac.exceptions import Forbidden, InternalServerError, InvalidRequest, VaultDown, VaultError
from sqlalchemy import text

from bench.core import BOT_TOKEN, SIGNING_SECRET, Lab, p50, p99, say
from devkit.openbao_server import OpenBaoServer
from devkit.processes import ServeProcess
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from devkit.standin.rendering import message_text
from grants.adapters.sql_store import SqlStore, make_engine
from grants.audit import AuditQuery, verify

SCOPE = "db-admin-staging"
APPROVERS = ("U0APPR001", "U0APPR002")  # group:db-oncall in the shipped catalog
WRAP_TOKEN = re.compile(r"unwrap ([A-Za-z0-9._-]{20,})")
NOT_ISSUED = "the credential could not be issued"  # bot/messages.py: an approval whose issue Vault refused (ended)
LEASE = 3  # JITBOT_OUTBOX_LEASE: how long a killed worker's claims hold
WAIT = 120.0  # seconds a step of one flow may wait (kills and Slack outages on a loaded machine)
# A credential DM Slack refused is replaced when its check comes due, 15 s after the issue (Deps.deliver_within),
# if the grant still runs then: a grant this short whose only try fell in an outage gets no DM, by design.
REDELIVERY = 15 + LEASE + 5
VAULT_DOWN = 5.0  # seconds OpenBao stays stopped in its restart (a SIGTERM and a start alone take about 1 s)
GRACE = timedelta(seconds=1)  # a Vault call sent just before the unseal answered may still have been refused
REVOKE_BACKOFF = 5  # grants/usecases/granting.py revoke_failed: a failed revoke is retried after 5, 10, 20 ... s


@dataclass
class Flow:
    """One requester's way through: request, approval, credential DM, then an early revoke or an expiry."""

    n: int
    requester: str
    seconds: int
    revoke: bool
    rid: str | None = None
    unacked: int = 0  # attempts (of any step) that got no 200: a killed web process, a timeout
    approved_acked: bool = False
    credential_at: float | None = None  # monotonic time the soak saw the credential DM
    requested_at: float = 0.0
    token_worked: bool = False
    approved_at: float = 0.0
    dead_token_at: datetime | None = None  # when the DM's token was found not working (ok once its grant had ended)
    late_credential: bool = False
    undelivered: bool = False  # no DM, and the grant was shorter than the redelivery check (REDELIVERY)
    not_issued: bool = False  # approved while OpenBao was down: the bot ended it issue_failed and told the requester
    revoke_acked_at: datetime | None = None
    error: str = ""


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)  # the soak is over: its processes may die
    kills: Counter[str] = field(default_factory=Counter)
    restarts: list[float] = field(default_factory=list)
    outages: list[str] = field(default_factory=list)
    vault_down: tuple[datetime, datetime] | None = None  # when OpenBao was stopped and when it answered again, unsealed
    refused_starts: int = 0  # restarts of a killed process that jitbot refused (exit 1) because Vault was down
    vault_calls_retried: int = 0  # the soak's own Vault calls (unwrap, lookup) that met the outage and were retried
    lock: threading.Lock = field(default_factory=threading.Lock)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load, kills and outages (default 180)")
    parser.add_argument("--rate", type=float, default=1.0, help="new requests per second (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the schedule (default 1)")
    parser.add_argument("--kill-every", type=float, default=6.0, help="mean seconds between kill -9s (default 6)")
    parser.add_argument("--slack-every", type=float, default=25.0, help="mean seconds between Slack outages (default 25)")
    parser.add_argument(
        "--vault-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"restart OpenBao (SIGTERM, down {VAULT_DOWN:g} s, start, unseal) once mid-load; default on",
    )
    parser.add_argument("--workdir", type=Path, help="keep the processes' logs here (default: a temp dir, removed)")
    return parser


def _catalog(lab: Lab, requesters: list[str]) -> None:
    """The shipped catalog with grants down to 2 s and the soak's requesters among the developers."""
    path = lab.catalog_path
    catalog = path.read_text().replace('min_duration = "10s"', 'min_duration = "2s"')
    members = ", ".join(f'"{r}"' for r in requesters)
    old = 'developers = ["U0DEV0001", "U0DEV0002", "U0DEV0003"]'
    assert old in catalog, "the shipped catalog's developers group changed"
    path.write_text(catalog.replace(old, f'developers = ["U0DEV0001", {members}]'))


def _post(flow: Flow, soak: Soak, web: dict[str, ServeProcess], slack: SlackStandIn, send: Any) -> tuple[int, Any]:
    """Send until acked (200), as a user trying again after an error; each try freshly signed. Raise after WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        client = SignedSlackClient(web["web"].url, SIGNING_SECRET, standin=slack, timeout=10)
        try:
            status, body = send(client)
        except OSError:
            status, body = 0, None
        if status == 200:
            return status, body
        flow.unacked += 1
        time.sleep(0.5 + soak.rng.random())
    raise TimeoutError("never acked")


def _run_flow(flow: Flow, soak: Soak, procs: dict[str, ServeProcess], slack: SlackStandIn, vault_addr: str) -> None:
    try:
        flow.requested_at = time.monotonic()
        # A new request is not retried once the web process may have taken it: a second one would be a second request.
        client = SignedSlackClient(procs["web"].url, SIGNING_SECRET, standin=slack, timeout=10)
        try:
            status, body = client.slash(flow.requester, f"{SCOPE} {flow.seconds}s SOAK-{flow.n} soak")
        except OSError:
            status, body = 0, None
        if status != 200:
            flow.unacked += 1
            flow.error = "request not acked"
            return
        flow.rid = rid = str(body["text"]).split("`")[1]
        slack.wait_for(
            lambda: slack.find_message(lambda m: rid in message_text(m) and "[Approve]" in message_text(m)), WAIT, "approval"
        )
        approver = APPROVERS[flow.n % 2]
        _post(flow, soak, procs, slack, lambda c: c.click(approver, "approve", rid))
        flow.approved_acked, flow.approved_at = True, time.monotonic()
        try:
            dm = slack.wait_for(
                lambda: next(
                    (
                        m
                        for m in slack.dm_messages(flow.requester)
                        if rid in m["text"] and (WRAP_TOKEN.search(m["text"]) or NOT_ISSUED in m["text"])
                    ),
                    None,
                ),
                WAIT if flow.seconds > REDELIVERY else flow.seconds + REDELIVERY + 20,
                "credential DM",
            )
        except AssertionError:
            if flow.seconds > REDELIVERY:
                raise
            flow.undelivered = True  # checked below: its grant ended, and no DM came at all
            return
        if NOT_ISSUED in dm["text"]:
            flow.not_issued = True  # checked below: it must have met the Vault outage
            return
        flow.credential_at = time.monotonic()
        wrapping = WRAP_TOKEN.search(dm["text"]).group(1)  # type: ignore[union-attr]
        token = _vault_call(soak, lambda: hvac.Client(url=vault_addr, token=wrapping).sys.unwrap()["auth"]["client_token"])
        try:
            flow.token_worked = bool(
                _vault_call(soak, lambda: hvac.Client(url=vault_addr, token=token).auth.token.lookup_self()["data"]["accessor"])
            )
        except Forbidden:
            flow.dead_token_at = datetime.now(UTC)  # fine only if its grant had ended by then (checked below)
        if flow.revoke:
            time.sleep(1 + 2 * random.Random(flow.n).random())
            _post(flow, soak, procs, slack, lambda c: c.slash(flow.requester, f"revoke {rid}"))
            flow.revoke_acked_at = datetime.now(UTC)
    except Exception as error:  # recorded, and a failed check below
        flow.error = f"{type(error).__name__}: {str(error)[:300]}"  # the stand-in's timeout dumps all its state


def _vault_call(soak: Soak, call: Any) -> Any:
    """A Vault call of the soak's user, tried again while OpenBao is down (refused connection, sealed, 5xx)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return call()
        except (requests.ConnectionError, VaultDown, InternalServerError):
            if time.monotonic() > deadline:
                raise
            with soak.lock:
                soak.vault_calls_retried += 1
            time.sleep(0.5)


def _vault_restarter(soak: Soak, vault: OpenBaoServer) -> None:
    """Once, at a random moment in the middle of the load: SIGTERM OpenBao, keep it down, start and unseal it."""
    if not soak.stop.wait(soak.rng.uniform(0.3, 0.6) * soak.args.duration):
        down = datetime.now(UTC)
        vault.restart(timeout=60, down=VAULT_DOWN)
        soak.vault_down = (down, datetime.now(UTC))
    # The restarted server dies with the thread that forked it (devkit/children.py): this one lives until the end.
    soak.done.wait()


def _revoke_allowance(expires_at: datetime, window: tuple[datetime, datetime] | None) -> float | None:
    """For a grant whose end fell while OpenBao was down: how late the product's revoke retries may end it.

    Its revoke fails at the end and is retried after 5, 10, 20 ... s (revoke_failed); the first try at or after
    OpenBao is back succeeds, then the usual lease + 5 s. None for a grant whose end was not in the outage."""
    if window is None or not window[0] <= expires_at <= window[1]:
        return None
    waited, attempt = 0.0, 1
    while (expires_at - window[0]).total_seconds() + waited < (window[1] - window[0]).total_seconds():
        waited += REVOKE_BACKOFF * 2 ** (attempt - 1)
        attempt += 1
    return waited + LEASE + 5


def _supervise(soak: Soak, procs: dict[str, ServeProcess], name: str) -> None:
    """Start a killed process again until it is healthy, as a platform restarts a crashed one (after a second)."""
    for _ in range(int(WAIT)):
        process = procs[name]
        try:
            process.start(timeout=60)
            return
        except AssertionError:
            tail = process.log_path.read_text(errors="replace").splitlines()[-2:]
            if any("cannot reach Vault" in line for line in tail):  # jitbot refuses to start without Vault: by design
                with soak.lock:
                    soak.refused_starts += 1
                time.sleep(1)
                continue
            # Its port was taken meanwhile: a new one (the web's URL moves with it).
            procs[name] = ServeProcess(process.env, process.log_path, role=process.role)
    raise RuntimeError(f"{name} did not start again in {WAIT:.0f} tries")


def _killer(soak: Soak, procs: dict[str, ServeProcess]) -> None:
    """kill -9 a random process every few seconds and start it again at once, as a platform would."""
    while not soak.stop.wait(soak.rng.uniform(0.5, 1.5) * soak.args.kill_every):
        name = soak.rng.choice(sorted(procs))
        process = procs[name]
        process.kill()
        began = time.monotonic()
        _supervise(soak, procs, name)
        with soak.lock:
            soak.kills[name.split("-")[0]] += 1
            soak.restarts.append(time.monotonic() - began)
    # The processes this thread restarted die with it (devkit/children.py ties them to the thread that forked them):
    # it lives until the soak is over.
    soak.done.wait()


def _slack_faults(soak: Soak, slack: SlackStandIn) -> None:
    """Now and then Slack answers 503 to everything for a few seconds, or rate-limits the next calls."""
    while not soak.stop.wait(soak.rng.uniform(0.5, 1.5) * soak.args.slack_every):
        if soak.rng.random() < 0.5:
            seconds = soak.rng.uniform(2, 6)
            slack.fail_all(None, 503)
            soak.stop.wait(seconds)
            slack.heal()
            soak.outages.append(f"503 for {seconds:.1f} s")
        else:
            count = soak.rng.randint(5, 20)
            slack.rate_limit_next(None, retry_after=1, count=count)
            soak.outages.append(f"429 x{count}")


def _alive(root: hvac.Client, accessor: str) -> bool:
    try:
        root.auth.token.lookup_accessor(accessor)
    except (InvalidRequest, Forbidden, VaultError):
        return False
    return True


def _credential_dms(slack: SlackStandIn, requester: str, rid: str) -> int:
    """Credential messages the requester received for this request (a later edit of one is still one)."""
    count = 0
    for message in slack.dm_messages(requester):
        versions = [message.get("text") or "", *((v.get("text") or "") for v in message.get("history") or [])]
        if any(rid in t and WRAP_TOKEN.search(t) for t in versions):
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    temporary = None if args.workdir else tempfile.TemporaryDirectory(prefix="jitbot-soak-")
    workdir = args.workdir or Path(temporary.name)  # type: ignore[union-attr]
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _soak(args, workdir)
    finally:
        if temporary is not None:
            temporary.cleanup()


def _soak(args: argparse.Namespace, workdir: Path) -> int:
    rng = random.Random(args.seed)
    total = int(args.duration * args.rate * 1.5) + 20
    requesters = [f"U0SK{i:05d}" for i in range(total)]
    users = {r: f"soak{i}" for i, r in enumerate(requesters)} | {
        a: a.lower() for a in (*APPROVERS, "U0DEV0001", "U0AUDIT01", "U0ADMIN01")
    }
    lab = Lab(workdir=workdir, quick=False, pg=True, persistent_vault=args.vault_restart)
    _catalog(lab, requesters)
    soak = Soak(args, workdir, rng)
    procs: dict[str, ServeProcess] = {}
    flows: list[Flow] = []
    try:
        vault = lab.vault
        with lab.database("soak") as db_url, SlackStandIn(BOT_TOKEN, users=users) as slack:
            env = {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.url,
                "VAULT_ADDR": vault.addr,
                "VAULT_TOKEN": lab.bot_token,
                "DATABASE_URL": db_url,
                "JITBOT_CATALOG": str(lab.catalog_path),
                "JITBOT_OUTBOX_LEASE": str(LEASE),
                "JITBOT_SLACK_PACING": "false",  # the stand-in is not Slack; the soak is about crashes, not pacing
            }
            for name in ("worker-1", "worker-2", "web"):
                procs[name] = ServeProcess(env, workdir / f"{name}.log", role=name.split("-")[0]).start(timeout=60)
            say(f"soak: {args.duration:g} s at {args.rate:g} requests/s, seed {args.seed}; logs in {workdir}")
            threads = [
                threading.Thread(target=_killer, args=(soak, procs), name="soak-killer", daemon=True),
                threading.Thread(target=_slack_faults, args=(soak, slack), name="soak-slack", daemon=True),
            ]
            if isinstance(vault, OpenBaoServer):
                threads.append(threading.Thread(target=_vault_restarter, args=(soak, vault), name="soak-vault", daemon=True))
            for thread in threads:
                thread.start()
            began = time.monotonic()
            with ThreadPoolExecutor(max_workers=96, thread_name_prefix="soak-flow") as pool:
                futures = []
                while time.monotonic() - began < args.duration and len(flows) < len(requesters):
                    revoke = rng.random() < 0.35
                    flow = Flow(len(flows), requesters[len(flows)], 60 if revoke else rng.randint(3, 15), revoke)
                    flows.append(flow)
                    futures.append(pool.submit(_run_flow, flow, soak, procs, slack, vault.addr))
                    time.sleep(rng.expovariate(args.rate))
                soak.stop.set()
                threads[1].join()  # the Slack faults end; the killer lives on until the end, see _killer
                slack.heal()
                say(
                    f"load over after {time.monotonic() - began:.0f} s: {len(flows)} flows, {sum(soak.kills.values())} kills; settling"
                )
                for future in futures:
                    future.result()
            engine = make_engine(db_url)
            horizon = time.monotonic() + 120
            while time.monotonic() < horizon:  # every grant ends (60 s ones that were not revoked: their expiry)
                with engine.connect() as connection:
                    live = connection.execute(text("SELECT count(*) FROM requests WHERE state = 'active'")).scalar_one()
                if not live:
                    break
                time.sleep(1)
            time.sleep(LEASE + 2)  # late duplicates of anything would show now
            return _check(soak, flows, engine, slack, vault.addr, vault.root_token)
    finally:
        soak.stop.set()
        for process in procs.values():
            process.stop()
        soak.done.set()
        lab.close()


def _check(soak: Soak, flows: list[Flow], engine: Any, slack: SlackStandIn, vault_addr: str, root_token: str) -> int:
    with engine.connect() as connection:
        trail = connection.execute(text("SELECT request_id, event, at FROM audit_events WHERE request_id IS NOT NULL")).all()
        requests = {
            row.id: row
            for row in connection.execute(text("SELECT id, requester, state, expires_at, ended_at, accessor FROM requests")).all()
        }
    counts: dict[str, Counter[str]] = {}
    ended_at: dict[str, datetime] = {}
    for rid, event, at in trail:
        counts.setdefault(rid, Counter())[event] += 1
        if event in ("expired", "revoked"):
            ended_at[rid] = at
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    acked = [f for f in flows if f.rid]
    for f in flows:
        check(not f.error or (f.error == "request not acked" and not f.rid), f"flow {f.n} ({f.rid}): {f.error}")
    for f in acked:
        rid, c = f.rid or "", counts.get(f.rid or "", Counter())
        check(rid in requests and c["requested"] == 1, f"{rid}: requested {c['requested']} times")
        if f.approved_acked and f.not_issued:  # only an issue that met the outage may fail (a second's grace)
            at = next((a for r, e, a in trail if r == rid and e == "issue_failed"), None)
            met = soak.vault_down is not None and at is not None and soak.vault_down[0] <= at <= soak.vault_down[1] + GRACE
            check(c["approved"] == 1 and c["issued"] == 0 and met, f"{rid}: issue failed at {at}, not in the Vault outage")
        elif f.approved_acked:
            check(c["approved"] == 1 and c["issued"] == 1, f"{rid}: approved {c['approved']}, issued {c['issued']}")
        if f.revoke_acked_at is not None:  # also when Vault was away: the retry records `revoked`, by the requester
            check(c["revoked"] == 1 and c["expired"] == 0, f"{rid}: revoked {c['revoked']}, expired {c['expired']}")
    by_rid = {f.rid: f for f in acked}
    posts, opens = slack.calls_to("chat.postMessage"), slack.calls_to("conversations.open")  # refused ones too
    late: list[float] = []
    in_outage: list[tuple[str, float, float]] = []  # grants whose end fell while OpenBao was down: (rid, late, allowed)
    root = hvac.Client(url=vault_addr, token=root_token)
    alive = 0
    issued = [rid for rid, c in counts.items() if c["issued"]]
    for rid in issued:
        row, c = requests[rid], counts[rid]
        check(
            c["issued"] == 1 and c["expired"] + c["revoked"] == 1,
            f"{rid}: issued {c['issued']}, ended {c['expired'] + c['revoked']}",
        )
        if rid in ended_at and row.expires_at is not None:
            after = (ended_at[rid] - row.expires_at).total_seconds()
            allowed = _revoke_allowance(row.expires_at, soak.vault_down)
            if allowed is None:
                check(after <= LEASE + 5, f"{rid}: ended {after:.1f} s after its end")
                if c["expired"]:
                    late.append(after)
            else:  # a separate, printed allowance: the product's revoke retries (5, 10, 20 ... s) across the outage
                in_outage.append((rid, after, allowed))
                check(
                    after <= allowed,
                    f"{rid}: its end fell in the Vault outage, ended {after:.1f} s late (allowed {allowed:.0f} s)",
                )
        if row.accessor and _alive(root, row.accessor):
            alive += 1
            failures.append(f"{rid}: its credential is alive in Vault after the grant")
        dms = _credential_dms(slack, row.requester, rid)
        undelivered = rid in by_rid and by_rid[rid].undelivered
        if undelivered:  # the bot tried (a DM refused, or its channel not opened) and Slack said no
            tried = any(rid in str(p.get("text")) and WRAP_TOKEN.search(str(p.get("text"))) for p in posts) or any(
                row.requester in str(p.get("users")) for p in opens
            )
            check(tried, f"{rid}: no credential DM, and none was even tried")
        check(dms == (0 if undelivered else 1), f"{rid}: {dms} credential DMs")
    for f in acked:
        expires = requests[f.rid].expires_at if f.rid in requests else None
        if f.dead_token_at is not None and expires is not None and f.dead_token_at >= expires:
            f.late_credential = True  # the DM came after a grant of seconds had already ended (a Slack outage)
    broken = [
        rid
        for rid in issued
        if rid in by_rid and not (by_rid[rid].token_worked or by_rid[rid].late_credential or by_rid[rid].undelivered)
    ]
    check(not broken, f"credential DMs that did not unwrap to a working token: {broken}")
    strays = sorted(set(requests) - set(by_rid))  # taken by the web process, but its answer never reached the soak
    verdict = verify(SqlStore(engine).events(AuditQuery()))
    check(verdict.intact, f"audit verify: {verdict}")
    latency = [f.credential_at - f.requested_at for f in acked if f.credential_at]
    unacked = sum(f.unacked for f in flows)
    revoked = sum(1 for f in acked if f.revoke_acked_at)
    print()
    print(f"flows {len(flows)}: requests acked {len(acked)}, approvals acked {sum(f.approved_acked for f in acked)}, "
          f"credentials {len(latency)}, early revokes acked {revoked}, grants issued {len(issued)}")  # fmt: skip
    print(f"credential DMs that came after their (short) grant had ended: {sum(f.late_credential for f in acked)}")
    print(
        f"grants of <= {REDELIVERY} s whose only credential DM Slack refused and that ended before its redelivery check: "
        f"{sum(f.undelivered for f in acked)} (no DM, by design; each checked to have none)"
    )
    print(
        f"unacked tries (retried by the user, or a request given up): {unacked}; requests the soak never saw acked: {len(strays)}"
    )
    print(
        f"kill -9: {dict(soak.kills)}; restart to healthy p50 {p50(soak.restarts or [0]):.1f} s, max {max(soak.restarts or [0]):.1f} s"
    )
    print(f"Slack faults: {len(soak.outages)} ({', '.join(soak.outages)})")
    if latency:
        print(f"request -> credential DM: p50 {p50(latency):.1f} s, p99 {p99(latency):.1f} s, max {max(latency):.1f} s")
    if late:
        ordered = sorted(late)
        print(f"grant end -> its expired event: p50 {p50(ordered):.2f} s, max {ordered[-1]:.2f} s "
              f"(allowed {LEASE + 5} s)")  # fmt: skip
    print(
        f"credentials alive after their grant: {alive}; audit verify: {'intact' if verdict.intact else 'BROKEN'} ({verdict.count} events)"
    )
    if soak.vault_down is None:
        print("OpenBao restart: none (--no-vault-restart, or the load ended first)")
    else:
        start, end = soak.vault_down
        during = Counter(event for _, event, at in trail if start <= at <= end)
        failed = Counter(event for _, event, at in trail if event in ("revoke_failed", "issue_failed"))
        print(
            f"OpenBao restart: down {(end - start).total_seconds():.1f} s (SIGTERM at {start:%H:%M:%S}, unsealed again "
            f"{end:%H:%M:%S}); events meanwhile: {dict(during) or 'none'}; revoke_failed {failed['revoke_failed']}, "
            f"issue_failed {failed['issue_failed']} in the whole run; restarts of killed processes refused for want of "
            f"Vault (started again a second later): {soak.refused_starts}; the soak's own Vault calls retried: "
            f"{soak.vault_calls_retried}"
        )
        worst = max(in_outage, key=lambda g: g[1] - g[2], default=None)
        print(f"approvals whose issue met the outage (ended issue_failed, requester told, by design): "
              f"{sum(f.not_issued for f in flows)}")  # fmt: skip
        print(
            f"grants whose end fell in the outage: {len(in_outage)}"
            + (f", ended at most {max(g[1] for g in in_outage):.1f} s late (each allowed its revoke retry: "
               f"first retry after the outage + lease + 5 s; closest {worst[0]} {worst[1]:.1f} of {worst[2]:.0f} s)"
               if worst else "")
        )  # fmt: skip
    if failures:
        print(f"\nsoak: {len(failures)} checks FAILED:")
        for line in failures[:50]:
            print(f"  - {line}")
        return 1
    print("\nsoak: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
