"""The audit trail as a use case: an audited export, and verification of the chain against its head."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO, Any

from grants import outbox
from grants.audit import EXPORT_FIELDS, Anchor, AnchorMoved, AuditQuery, Verdict, continues, verify, write_export_rows
from grants.domain import AuditEvent
from grants.lifecycle import Event
from grants.outbox import Alert
from grants.ports import AuditAnchor, Clock, Trail
from grants.usecases import deps as deps_
from grants.usecases.deps import Deps

log = logging.getLogger(__name__)


def export(trail: Trail, clock: Clock, actor: str, query: AuditQuery, out: IO[str], fmt: str, **context: Any) -> int:
    """Stream the trail to `out` as CSV or JSONL, then record that it was exported (format, filters, count)."""
    lines = trail.csv_lines(query) if fmt == "csv" else None
    if lines is not None:  # the database builds the CSV lines itself (SQLite): same bytes, a fraction of the time
        out.write(",".join(EXPORT_FIELDS) + "\n")
        count = 0
        for chunk, rows in lines:
            out.write(chunk)
            count += rows
    else:
        count = write_export_rows(trail.event_rows(query), out, fmt)
    filters = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(query).items() if v is not None}
    detail = {"format": fmt, "count": count, "filters": filters, **context}
    # Through the one guarded writer of trail events (deps.append_trail, as Deps.record_trail), like every other event about no request.
    deps_.append_trail(trail, AuditEvent(event=Event.EXPORTED, at=clock.now(), actor=actor, detail=detail))
    return count


def verify_trail(trail: Trail, anchor: AuditAnchor | None = None, now: datetime | None = None) -> Verdict:
    """Recompute the whole chain, compare its end with the chain head (deleting the newest events is tampering
    too), then with the anchor outside the database: someone who can write the database but not Vault can
    neither truncate the trail below the anchor nor rewrite (and re-hash) anything up to it. With `now`, every
    event older than a minute must be covered by the anchor (`unvouched`)."""
    outside = anchor.latest() if anchor is not None else None
    verdict = verify(trail.events(AuditQuery()), frozenset({outside.seq}) if outside else frozenset())
    verdict = replace(verdict, anchor=outside)
    if not verdict.intact:
        return verdict
    if outside is not None and verdict.count < outside.seq:
        return replace(verdict, intact=False, broken_seq=verdict.count + 1,
                       why=f"the anchor outside the database says {outside.seq} events: the trail was truncated")  # fmt: skip
    if outside is not None and outside.seq > 0 and verdict.hashes.get(outside.seq) != outside.hash:
        return replace(verdict, intact=False, broken_seq=outside.seq,
                       why="the event's hash differs from the anchor outside the database: the trail was rewritten")  # fmt: skip
    head_seq, head_hash = trail.chain_head()
    if (verdict.count, verdict.last_hash) != (head_seq, head_hash):
        return replace(
            verdict,
            intact=False,
            broken_seq=verdict.count + 1,
            why=f"the chain head says {head_seq} events: the newest were deleted",
        )
    why = unvouched(trail, outside, now) if anchor is not None and now is not None else None
    if why:
        return replace(verdict, intact=False, broken_seq=(outside.seq if outside else 0) + 1, why=why)
    return verdict


VOUCH_WITHIN = timedelta(minutes=1)  # an event older than this must be covered by the anchor outside the database


def unvouched(trail: Trail, outside: Anchor | None, now: datetime, born: datetime | None = None) -> str:
    """Why the anchor outside the database does not vouch for the trail as it was a minute ago ("" when it does).

    Fail closed: an anchor that cannot be written must not look like a trail with nothing to anchor. With no anchor
    at all, an empty trail is vouched for only within a minute of `born` (when this process started; never for
    `verify`): a database insider who deleted every event and the head leaves exactly that."""
    covered = outside.seq if outside is not None else 0
    first = next(iter(trail.events(AuditQuery(from_seq=covered + 1))), None)
    if first is None:
        if outside is not None or (born is not None and now - born < VOUCH_WITHIN):
            return ""
        return (
            "no anchor in Vault vouches for this trail and it holds no events: either the bot has never anchored "
            "(check JITBOT_AUDIT_ANCHOR and that the bot's policy may write it; `jitbot vault sync` says) or every "
            "event and the chain head were deleted"
        )
    age = now - first.at
    if age < VOUCH_WITHIN:
        return ""
    return (
        f"no anchor in Vault vouches for the events from seq {first.seq} on (the oldest written {int(age.total_seconds())}s "
        f"ago; the anchor {'covers seq ' + str(covered) if outside else 'was never written'}): an insider could have "
        "changed them unnoticed"
    )


@dataclass(frozen=True)
class Anchoring:
    """What a worker remembers between ticks: the seq it last saw anchored, and the anchor version it refuses to
    write over (None: not refusing). Kept in memory only: a restarted bot reads the anchor and checks again."""

    seq: int = -1  # -1: nothing checked in this process yet
    refused_over: int | None = None


def anchor_chain(deps: Deps, anchor: AuditAnchor, last: Anchoring) -> Anchoring:
    """Write the chain head outside the database when it moved, but only over an anchor it continues.

    The anchor is read again before every write and the stored chain checked from the anchored event to the head:
    a database insider who truncated or re-hashed the trail would otherwise only have to wait for a restart (or for
    seq to pass the anchor) for a worker to anchor the forgery, and `verify` would pass. A head that does not
    continue the anchor is refused, alerted and audited once per anchor version, and refused on every tick after,
    until an operator restores the trail or, with Vault rights the bot lacks, writes a new anchor (docs/operations.md)."""
    head = deps.trail.chain_head()
    if last.refused_over is None and head[0] == last.seq:
        return last  # nothing new since the last anchor: no Vault call
    outside = anchor.latest()
    version = outside.version if outside is not None else 0
    events = deps.trail.events(AuditQuery(from_seq=outside.seq if outside is not None and outside.seq > 0 else 1))
    why = continues(events, outside if outside is not None and outside.seq > 0 else None, head)
    if why:
        if last.refused_over != version:  # once per anchor version: the refusal's own event moves the head
            _refuse(deps, outside, head, why)
        return Anchoring(last.seq, version)
    if last.refused_over is not None:
        log.warning("the audit trail continues its anchor again (seq %s): anchoring resumes", outside.seq if outside else 0)
    if outside is not None and head[0] == outside.seq:
        return Anchoring(head[0])  # already anchored (by another worker, or before a restart)
    # An empty trail is anchored too (seq 0): "no anchor" then always means one could not be written (fail closed).
    try:
        anchor.write(head[0], head[1], version)  # check-and-set over the version just checked against
    except AnchorMoved:
        return Anchoring()  # another worker anchored meanwhile: read and check again on the next tick
    return Anchoring(head[0])


def _refuse(deps: Deps, outside: Anchor | None, head: tuple[int, str], why: str) -> None:
    anchored = outside.seq if outside is not None else 0
    log.error("refusing to anchor the audit trail: %s (anchored seq %s, database head seq %s)", why, anchored, head[0])
    deps.record_trail(
        AuditEvent(
            event=Event.ANCHOR_REFUSED,
            at=deps.clock.now(),
            actor="system",
            detail={
                "why": why,
                "anchored_seq": anchored,
                "anchor_version": outside.version if outside else 0,
                "head_seq": head[0],
                "head_hash": head[1],
            },
        )
    )
    deps.enqueue(outbox.alert(Alert.ANCHOR_REFUSED, why=why, anchored_seq=anchored, head_seq=head[0]))


@dataclass(frozen=True)
class AnchorWatch:
    """When the anchor last vouched for the chain head in this process (or the process started), and whether the
    outage since has been alerted."""

    ok_at: datetime
    alerted: bool = False


def watch_anchor(deps: Deps, watch: AnchorWatch, error: str | None) -> AnchorWatch:
    """After an anchoring attempt (`error` None: the head is anchored): an anchor not written for a minute is one
    alert per outage; anchoring again ends the outage."""
    now = deps.clock.now()
    if error is None:
        if watch.alerted:
            log.warning("the audit chain is anchored again")
        return AnchorWatch(now)
    if watch.alerted or now - watch.ok_at < VOUCH_WITHIN:
        return watch
    log.error("the audit chain has not been anchored since %s: %s", watch.ok_at.isoformat(), error)
    deps.enqueue(outbox.alert(Alert.ANCHOR_DOWN, error=error, since=watch.ok_at.isoformat(timespec="seconds")))
    return AnchorWatch(watch.ok_at, alerted=True)
