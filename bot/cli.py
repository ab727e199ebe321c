"""The `jitbot` command line: serve, check, vault sync/sweep, audit export/verify, db upgrade, demo."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from bot.settings import SettingsError, load_settings
from grants.catalog import CatalogError
from grants.domain import CredentialError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (SettingsError, CatalogError, CredentialError) as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jitbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--socket-mode", action="store_true")
    serve.add_argument(
        "--worker-process",
        action="store_true",
        help="run the post-ack work, the outbox and the timers in a worker process of their own (faster acks)",
    )
    serve.set_defaults(run=cmd_serve)

    # Internal: the worker process `serve --worker-process` starts, talking to it over an inherited socket.
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("--link-fd", type=int, required=True)
    worker.set_defaults(run=cmd_worker)

    check = sub.add_parser("check", help="validate the catalog and the policy files")
    check.add_argument("--grants", action="store_true", help="also show what each scope's policies allow, path by path")
    check.set_defaults(run=cmd_check)

    vault = sub.add_parser("vault", help="Vault administration").add_subparsers(dest="vault_command", required=True)
    vault.add_parser("sync", help="write the policies and the token role into Vault").set_defaults(run=cmd_vault_sync)
    sweep = vault.add_parser("sweep", help="delete jit-* identity groups past their end (cron; jitbot-sweeper policy)")
    sweep.add_argument("--max-age", help="also delete groups older than this (default: the catalog's longest total)")
    sweep.set_defaults(run=cmd_vault_sweep)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    export = audit.add_parser("export", help="stream the audit trail as CSV or JSONL")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--since")
    export.add_argument("--until")
    export.add_argument("--scope")
    export.add_argument("--user")
    export.add_argument("-o", "--output", type=Path)
    export.set_defaults(run=cmd_audit_export)
    audit.add_parser("verify", help="recompute the hash chain").set_defaults(run=cmd_audit_verify)

    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply schema migrations").set_defaults(run=cmd_db_upgrade)

    demo = sub.add_parser("demo", help="the whole elevation path on embedded defaults, no Slack or Vault needed")
    demo.add_argument("--workdir", type=Path, default=None, help="where the demo keeps its SQLite file (default: a temp dir)")
    demo.set_defaults(run=cmd_demo)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from bot.serve import run

    setup_logging()
    settings = load_settings()
    port = args.port or settings.port
    socket_mode = args.socket_mode or settings.slack_app_token is not None
    return run(settings, args.host, port, socket_mode=socket_mode, worker_process=args.worker_process)


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from bot.worker_link import run_worker

    setup_logging()
    return run_worker(args.link_fd)


def cmd_check(args: argparse.Namespace) -> int:
    from bot.checks import check_all, notes

    settings = load_settings()
    problems = check_all(settings.jitbot_catalog)
    for note in notes(settings.jitbot_catalog):
        print(note)
    if args.grants and not problems:
        from bot.checks import grants_of

        for line in grants_of(settings.jitbot_catalog):
            print(line)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found.", file=sys.stderr)
        return 1
    print(f"{settings.jitbot_catalog}: catalog and policies are valid.")
    return 0


def cmd_vault_sync(args: argparse.Namespace) -> int:
    from bot.wiring import sync_vault

    settings = load_settings()
    for line in sync_vault(settings):
        print(line)
    return 0


def cmd_vault_sweep(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from bot.wiring import sweep_vault
    from grants.catalog import load_catalog
    from grants.durations import parse_duration

    settings = load_settings()
    # Independent of the bot's database on purpose: only Vault and the catalog, so it works when the bot does not.
    if args.max_age:
        try:
            max_age = parse_duration(args.max_age)
        except ValueError as error:
            print(f"--max-age: {error} (e.g. --max-age 8h)", file=sys.stderr)
            return 2
    else:
        scopes = list(load_catalog(settings.jitbot_catalog).scopes.values())
        # Only kinds without a TTL of their own leave groups for the sweeper: their longest total bounds a group's age.
        open_ended = [scope for scope in scopes if not scope.ends_by_itself] or scopes
        max_age = max(scope.max_total for scope in open_ended)
    lines = sweep_vault(settings, datetime.now(UTC), max_age)
    for line in lines:
        print(line)
    print(f"vault sweep: {len(lines)} identity group(s) deleted")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from bot.wiring import open_audit
    from grants.audit import AuditQuery, parse_time
    from grants.usecases.auditing import export as export_trail

    store, clock = open_audit(load_settings())
    now = clock.now()
    try:
        query = AuditQuery(
            since=parse_time(args.since, now) if args.since else None,
            until=parse_time(args.until, now) if args.until else None,
            scope=args.scope,
            user=args.user,
        )
    except ValueError as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    context = {"via": "cli", "os_user": getpass.getuser()}
    if args.output:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            sink: Any = out
            if sys.stderr.isatty():  # a person is watching: show progress; pipes, logs and CI get none
                from bot.progress import ProgressWriter

                unfiltered = not any(vars(query).values())
                total = store.chain_head()[0] if unfiltered else None  # the chain head counts every event; filters: unknown
                sink = ProgressWriter(out, sys.stderr, total, header_lines=1 if args.format == "csv" else 0)
            count = export_trail(store, clock, "system", query, sink, args.format, **context)
            if sink is not out:
                sink.draw(final=True)
    else:
        count = export_trail(store, clock, "system", query, sys.stdout, args.format, **context)
    print(f"exported {count} events", file=sys.stderr)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from bot.wiring import open_anchor, open_audit
    from grants.credentials import CredentialError
    from grants.usecases.auditing import verify_trail

    settings = load_settings()
    store, _ = open_audit(settings)
    try:
        anchor = open_anchor(settings)
        verdict = verify_trail(store, anchor)
    except CredentialError as error:
        print(f"jitbot: {error}; the chain cannot be checked against its anchor", file=sys.stderr)
        return 2
    if not verdict.intact:
        print(f"audit trail BROKEN at event seq {verdict.broken_seq}: {verdict.why} ({verdict.count} events before it verified)")
        return 1
    print(f"audit trail intact: {verdict.count} events verified")
    if verdict.anchor is not None:
        age = (datetime.now(UTC) - verdict.anchor.at).total_seconds()
        print(
            f"anchor: seq {verdict.anchor.seq} written to Vault {age:.0f}s ago matches; the {verdict.count - verdict.anchor.seq} "
            "newer event(s) are covered by the chain and its head only"
        )
    elif anchor is None:
        print(
            "anchor: not checked (VAULT_ADDR is not set): deleting the newest events together with the chain head, "
            "or rewriting and re-hashing the whole trail, would go unnoticed"
        )
    else:
        print("anchor: none written yet (the bot writes one every second while it runs)")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.wiring import migrate_database

    settings = load_settings()
    migrate_database(settings)
    print("database schema is up to date")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.commands import CommandUnavailable, load_command

    try:
        demo = load_command("demo")  # the dev kit's, through an entry point: the product never imports it
    except CommandUnavailable as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    return int(demo(args.workdir) or 0)


if __name__ == "__main__":
    sys.exit(main())
