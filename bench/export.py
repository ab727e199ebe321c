"""Audit export of a large trail to CSV: `jitbot audit export` (time, peak RSS) against the sqlite3 CLI's own CSV export."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.core import SCOPE, Figure, Lab, say
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import make_engine
from grants.audit import GENESIS_HASH, canonical_json, chained
from grants.domain import AuditEvent

NAME = "export"
SQLITE3 = "/usr/bin/sqlite3"
GNU_TIME = "/usr/bin/time"
CHUNK = 20_000
EPOCH = datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)


REASON = "INC-{k} replay stuck refunds for merchant {m} — “urgent”, see runbook"
APPROVERS = ["U0APPR001", "U0APPR002", "U0APPR003"]


def _event(seq: int) -> AuditEvent:
    """The seq-th event of a realistic trail: each request is requested, approved, issued and expired."""
    k, step = divmod(seq - 1, 4)
    request_id, requester = f"JIT-{k:08X}", f"U0D{k % 5000:06d}"
    at = EPOCH + timedelta(seconds=seq * 3, microseconds=seq % 997)
    accessor = hashlib.sha256(str(k).encode()).hexdigest()[:24]
    if step == 0:
        name, actor = "requested", requester
        detail = {
            "approvals_required": 1,
            "approvers": APPROVERS,
            "duration": "30m",
            "duration_seconds": 1800,
            "reason": REASON.format(k=k, m=k % 977),
        }
    elif step == 1:
        name, actor, detail = "approved", "U0APPR001", {"approvers": ["U0APPR001"]}
    elif step == 2:
        expires = (at + timedelta(minutes=30)).isoformat()
        name, actor, detail = "issued", "system", {"accessor": accessor, "expires_at": expires}
    else:
        name, actor, detail = "expired", "system", {"accessor": accessor, "lag_seconds": round((seq % 50) / 1000, 3)}
    return AuditEvent(
        event=name, at=at, actor=actor, request_id=request_id, scope=SCOPE, subject=requester, detail=detail, seq=seq
    )


_DAY = 86_400
_BASE = EPOCH.hour * 3600 + EPOCH.minute * 60 + EPOCH.second
_DATES: dict[int, str] = {}


def _iso(seconds: int, micro: int) -> str:
    """(EPOCH + seconds + micro µs).isoformat(timespec="microseconds") by integer arithmetic (micro never carries)."""
    day, rest = divmod(_BASE + seconds, _DAY)
    date = _DATES.get(day)
    if date is None:
        date = _DATES[day] = (EPOCH.date() + timedelta(days=day)).isoformat()
    hours, rest = divmod(rest, 3600)
    return f"{date}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{micro:06d}+00:00"


def _fast_row(seq: int) -> tuple[tuple[object, ...], str]:
    """_event(seq) as a stored row (without hashes) and its canonical JSON, by string templates: several times faster
    than building the AuditEvent and calling canonical_json. build_trail checks the two agree on a sample of events."""
    k, step = divmod(seq - 1, 4)
    request_id, requester = f"JIT-{k:08X}", f"U0D{k % 5000:06d}"
    micro = EPOCH.microsecond + seq % 997
    iso_at = _iso(seq * 3, micro)
    if step == 0:
        name, actor = "requested", requester
        reason = REASON.format(k=k, m=k % 977)
        detail = f'{{"approvals_required":1,"approvers":["U0APPR001","U0APPR002","U0APPR003"],"duration":"30m","duration_seconds":1800,"reason":"{reason}"}}'
    elif step == 1:
        name, actor, detail = "approved", "U0APPR001", '{"approvers":["U0APPR001"]}'
    else:
        accessor = hashlib.sha256(str(k).encode()).hexdigest()[:24]
        if step == 2:
            name, actor = "issued", "system"
            detail = f'{{"accessor":"{accessor}","expires_at":"{_iso(seq * 3 + 1800, micro)}"}}'
        else:
            name, actor = "expired", "system"
            detail = f'{{"accessor":"{accessor}","lag_seconds":{round((seq % 50) / 1000, 3)!r}}}'
    canonical = (
        f'{{"actor":"{actor}","at":"{iso_at}","detail":{detail},"event":"{name}","request_id":"{request_id}",'
        f'"scope":"{SCOPE}","seq":{seq},"subject":"{requester}"}}'
    )
    stored_at = f"{iso_at[:10]} {iso_at[11:26]}"  # SQLAlchemy's SQLite DATETIME text: 'YYYY-MM-DD HH:MM:SS.ffffff'
    return (seq, stored_at, name, request_id, SCOPE, actor, requester, detail), canonical


def _check(seq: int, row: tuple[object, ...], canonical: str, prev: str, digest: str) -> None:
    """The templated row must be exactly what the store would write and the chain exactly what grants.audit computes."""
    event = _event(seq)
    assert canonical == canonical_json(event), f"canonical JSON differs at seq {seq}"
    assert row[7] == json.dumps(event.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False), (
        f"detail differs at {seq}"
    )
    assert row[1] == event.at.strftime("%Y-%m-%d %H:%M:%S.%f"), f"stored time differs at seq {seq}"
    assert chained(event, seq, prev).hash == digest, f"hash differs at seq {seq}"


def build_trail(path: Path, count: int) -> None:
    """A migrated SQLite database holding `count` hash-chained audit events (and the matching chain head)."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    prev = GENESIS_HASH
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=OFF")  # a throwaway build: no journal, no fsync; WAL again at the end
    connection.execute("PRAGMA synchronous=OFF")
    indexes = connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL"
    ).fetchall()
    for (sql,) in indexes:  # rebuilt once at the end: faster than maintaining them row by row
        connection.execute("DROP INDEX " + sql.split(" ON ")[0].split()[-1])
    connection.execute("BEGIN")
    sha256 = hashlib.sha256
    for start in range(1, count + 1, CHUNK):
        linked = []
        for seq in range(start, min(start + CHUNK, count + 1)):
            row, canonical = _fast_row(seq)
            digest = sha256((prev + canonical).encode("utf-8")).hexdigest()  # = grants.audit.event_hash(prev, event)
            if seq <= 8 or seq % 997 == 0 or seq == count:
                _check(seq, row, canonical, prev, digest)
            linked.append((*row, prev, digest))
            prev = digest
        connection.executemany("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", linked)
    connection.execute("INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (count, prev))
    for (sql,) in indexes:
        connection.execute(sql)
    connection.execute("COMMIT")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


def _measure(command: list[str], stdout: Path | None, env: dict[str, str] | None, cwd: Path, limit: float) -> tuple[float, float]:
    """Run `command`; its wall time (s) and its own peak RSS (MB).

    The RSS comes from GNU time, a small C process in between: a child forked straight from this (large) Python
    process would report our RSS at fork time as its own peak, since Linux carries the pre-exec high-water mark over.
    """
    report = cwd / "time-report.txt"
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(report), *command]
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    try:
        started = time.monotonic()
        done = subprocess.run(wrapped, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=limit, check=False)
        elapsed = time.monotonic() - started
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    if done.returncode != 0:
        raise RuntimeError(
            f"{command[0]} exited {done.returncode} after {elapsed:.1f}s: {done.stderr.decode(errors='replace')[-1000:]}"
        )
    peak_kb = int(report.read_text().split()[-1])
    report.unlink()
    return elapsed, peak_kb / 1024


def _forget_exports(database: Path, count: int) -> None:
    """Undo the `exported` event each `jitbot audit export` appends, so every run exports the same trail."""
    connection = sqlite3.connect(database)
    try:
        last = connection.execute("SELECT hash FROM audit_events WHERE seq = ?", (count,)).fetchone()[0]
        connection.execute("DELETE FROM audit_events WHERE seq > ?", (count,))
        connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (count, last))
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


def _jitbot() -> list[str]:
    beside = Path(sys.executable).parent / "jitbot"
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "bot.cli"]


def run(lab: Lab) -> list[Figure]:
    count = lab.size(1_000_000, 20_000)
    for tool, package in ((SQLITE3, "sqlite3"), (GNU_TIME, "time")):
        if not Path(tool).is_file():
            raise RuntimeError(f"{tool} is missing (apt-get install {package})")
    database = lab.workdir / "audit-trail.db"
    started = time.monotonic()
    build_trail(database, count)
    say(f"built {count:,} chained events in {time.monotonic() - started:.1f}s ({database.stat().st_size / 2**20:.0f} MB)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(lab.workdir), "DATABASE_URL": f"sqlite:///{database}"}
    try:
        if count <= 50_000:  # the chain as built must verify (too slow to check at full size on every run)
            done = subprocess.run(
                [*_jitbot(), "audit", "verify"],
                env=env,
                cwd=lab.workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the seeded trail does not verify: {done.stdout}{done.stderr}")
        ours, theirs = lab.workdir / "export-jitbot.csv", lab.workdir / "export-sqlite3.csv"
        query = "SELECT * FROM audit_events ORDER BY seq"
        baseline = [
            _measure([SQLITE3, "-csv", "-header", str(database), query], theirs, None, lab.workdir, 300)
            for _ in range(lab.size(3, 1))
        ]
        command = [*_jitbot(), "audit", "export", "--format", "csv", "-o", str(ours)]
        subject: list[tuple[float, float]] = []
        runs = lab.size(3, 1)
        while len(subject) < runs and (not subject or subject[0][0] < 10):  # a median of three when a run is cheap
            subject.append(_measure(command, None, env, lab.workdir, 600))
            _forget_exports(database, count)
            if _lines(ours) != count + 1:
                raise RuntimeError(f"{ours.name} has {_lines(ours)} lines, expected {count + 1}")
        if _lines(theirs) != count + 1:
            raise RuntimeError(f"{theirs.name} has {_lines(theirs)} lines, expected {count + 1}")
        size = ours.stat().st_size / 2**20
    finally:
        for path in lab.workdir.glob("export-*.csv"):
            path.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    seconds = statistics.median(t for t, _ in subject)
    base_seconds = statistics.median(t for t, _ in baseline)
    rss, base_rss = max(m for _, m in subject), max(m for _, m in baseline)
    say(f"jitbot export {seconds:.2f}s / {rss:.0f} MB; sqlite3 {base_seconds:.2f}s / {base_rss:.0f} MB")
    runs = f"{count:,} events, {size:.0f} MB CSV, median of {len(subject)} vs {len(baseline)} runs"
    return [
        Figure(
            NAME,
            f"CSV export of {count:,} events: time",
            "s",
            seconds,
            base_seconds,
            "sqlite3 -csv of the same table",
            max_ratio=2.0,
            note=runs,
        ),
        Figure(NAME, f"CSV export of {count:,} events: peak RSS", "MB", rss, base_rss, "sqlite3 -csv peak RSS", at_most=150.0),
    ]
