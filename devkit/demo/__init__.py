"""`jitbot demo`: the whole elevation path on a local OpenBao, a Slack stand-in and the real bot, narrated.

Nothing outside this machine is needed: no Slack workspace, no Vault, no settings. Every credential the demo
makes (OpenBao root token, the bot's Vault token, Slack signing secret and bot token) is random per run.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.logs import setup_logging
from bot.settings import Settings, load_settings
from bot.wiring import sync_vault
from devkit.demo.steps import Stage, play
from devkit.demo.tools import Bao, DemoError, Narrator
from devkit.harness import LocalBot, free_port
from devkit.jira import JiraStandIn
from devkit.openbao import OpenBaoDevServer
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from devkit.stepup import OpenBaoIdP
from grants.adapters.vault_client import vault_client
from grants.catalog import Catalog, load_catalog

POLICY_DIR = Path(__file__).resolve().parents[2] / "vault_policies"
# Display names for everyone the shipped catalog names; anyone else it names is shown by user ID.
CAST = {
    "U0DEV0001": "Dana",
    "U0DEV0002": "Devon",
    "U0DEV0003": "Drew",
    "U0APPR001": "Ari",
    "U0APPR002": "Ben",
    "U0APPR003": "Cleo",
    "U0APPR004": "Dmitri",
    "U0APPR005": "Eve",
    "U0APPR006": "Farid",
    "U0SEC0001": "Sam",
    "U0SEC0002": "Sasha",
    "U0AUDIT01": "Audrey",
    "U0ADMIN01": "Adam",
}
# What the demo adds to its copy of the shipped catalog (docs/catalog.md): a scope Vault itself enforces, whose
# approvers sign in with TOTP on the step-up page, and a scope bound to a live Jira ticket. {web_url}, {jira_url}: this run's.
DEMO_WEB_URL = 'web_url = "{web_url}"                 # the step-up page: <web_url>/stepup/…\n'
DEMO_TRACKERS = """[settings.trackers.jira]                # its token: JITBOT_TRACKER_JIRA_TOKEN (the demo sets it for its bot only)
kind = "jira"
url = "{jira_url}"                  # the demo's Jira stand-in (devkit/jira.py)

"""
DEMO_SCOPES = """
[scopes.payments-keys]
description = "Rotate the payment keys: Vault itself wants two approvers, each signed in"
credential = "vault_token"
policies = ["payments-read", "payments-write"]
min_duration = "1m"
default_duration = "15m"
max_duration = "30m"
requesters = ["U0DEV0001"]
approvers = ["U0APPR001", "U0APPR002"]
approvals_required = 2
approval = "vault"                      # OpenBao's control group releases the credential, not the bot
step_up = true                          # each approver signs in (password + TOTP) on the step-up page
require_reason = true

[scopes.payments-support]
description = "Read production payment secrets while a support ticket is open"
credential = "vault_token"
policies = ["payments-read"]
min_duration = "1m"
default_duration = "30m"
max_duration = "2h"
requesters = ["group:developers"]
approvers = ["group:db-oncall"]
require_reason = true

[scopes.payments-support.ticket]
tracker = "jira"
required = true                         # the reason must cite an open Jira issue
must_be_open = true
end_when_closed = true                  # the grant ends when the issue is resolved
"""
JIRA_LOGIN = "jitbot@demo.test"
STEP_UP_APPROVERS = ("U0APPR001", "U0APPR002")  # payments-keys' approvers: Ari and Ben
DEMO_SECRETS = {
    "secret/payments/stripe": ["api_key=sk_demo_not_a_real_key_4242", "webhook_secret=whsec_demo_only"],
    "secret/k8s/prod": ["kubeconfig=demo-cluster-admin-config"],  # exists, but lies outside payments-read
}


def main(workdir: Path | None = None) -> int:
    """The `jitbot demo` command (entry point group `jitbot.commands`): run the demo, its exit status.

    Ctrl-C (SIGINT) and SIGTERM stop it at once: every part it started is stopped before it exits (128 + signal)."""
    try:
        with stops_on_signals():
            return run_demo(workdir)
    except Stopped as stop:
        print(f"jitbot demo: stopped by {stop.name}", file=sys.stderr)
        return 128 + stop.signum


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: unwinds the demo like KeyboardInterrupt, so every part started is stopped on the way."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextmanager
def stops_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped in the main thread, once; a second signal during the clean-up is ignored.

    SIGINT gets a handler of our own on purpose: a shell starts background jobs with SIGINT ignored, and Python keeps
    an inherited "ignore", so `jitbot demo &` followed by `kill -INT` would otherwise play the whole story on."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_demo(workdir: Path | None) -> int:
    """Run the demo; 0 when every step did what it should, 1 (with the reason on stderr) otherwise."""
    setup_logging(logging.WARNING)  # JSON lines on stderr, and only when something is wrong: stdout is the transcript
    for handler in logging.getLogger().handlers:
        handler.addFilter(_expected_noise)
    narrator = Narrator(CAST)
    alerts = _AlertsToTranscript(narrator)
    logging.getLogger().addHandler(alerts)
    try:
        return _run(narrator, workdir)
    finally:
        logging.getLogger().removeHandler(alerts)


def _run(narrator: Narrator, workdir: Path | None) -> int:
    with ExitStack() as stack:
        try:
            stage = set_stage(stack, narrator, workdir)
            play(stage)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # any failure ends the demo with one clear line, never a traceback
            kind = "" if isinstance(error, DemoError) else f"{type(error).__name__}: "
            print(narrator.mask(f"\njitbot demo: FAILED: {kind}{error}"), file=sys.stderr)
            return 1
        finally:
            narrator.say("\nStopping the bot, the Slack stand-in and OpenBao…")
    narrator.say("Demo complete.")
    for line in NEXT_STEPS:
        narrator.say(line)
    return 0


NEXT_STEPS = (
    "",
    "Next:",
    "  jitbot playground      the same stage as a page in your browser: type the commands, click the buttons yourself",
    "  docs/install.md        the install guide: a real Slack workspace and Vault, step by step",
    "  jitbot --help          every command, its defaults and the environment it reads",
)


def set_stage(stack: ExitStack, narrator: Narrator, workdir: Path | None, catalog_path: Path | None = None) -> Stage:
    """OpenBao with the policies synced and demo secrets, the bot's own token, the Slack stand-in and the bot.

    `catalog_path`: another catalog (its policies beside it) than the shipped one, e.g. the playground's copy. Without
    it the demo runs on a copy of the shipped catalog with DEMO_SCOPES added, and a Jira stand-in for their tracker."""
    shipped = catalog_path or POLICY_DIR / "catalog.toml"
    if not shipped.is_file():
        raise DemoError(
            f"the demo runs on the shipped catalog, expected at {shipped}, which is missing: "
            "reinstall jitbot (`pip install 'jitbot[demo]'`, or `pip install -e '.[demo]'` in a source checkout)"
        )
    work = workdir.resolve() if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jitbot-demo-")))
    work.mkdir(parents=True, exist_ok=True)
    port, jira = free_port(), None
    if catalog_path is None:
        jira = JiraStandIn(JIRA_LOGIN, secrets.token_hex(16))
        _on_exit(stack, jira.stop)
        jira.start()
        narrator.hide(jira.auth.removeprefix("Basic "))
        _tracker_token(stack, narrator, jira)
        catalog_path = demo_catalog(shipped, work / "jitbot-demo-policies", web_url=f"http://127.0.0.1:{port}", jira_url=jira.url)
    catalog = load_catalog(catalog_path)
    database = work / "jitbot-demo.sqlite3"
    for leftover in ("", "-wal", "-shm", "-journal"):  # every run starts its audit trail afresh
        database.with_name(database.name + leftover).unlink(missing_ok=True)
    narrator.step("Setting the stage (all local, all throwaway)", numbered=False)

    openbao = OpenBaoDevServer()
    narrator.hide(openbao.root_token)
    _on_exit(stack, openbao.close)
    openbao.start()
    narrator.note(f"OpenBao dev server (in memory) at {openbao.addr}; an operator holds its root token")
    bao = Bao(openbao.addr, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jitbot-demo-bao-"))))
    base: dict[str, Any] = {  # explicit settings win over the environment and .env
        "vault_addr": openbao.addr,
        "vault_role_id": None,
        "vault_secret_id": None,
        "slack_app_token": None,
        "jitbot_catalog": catalog_path,
        "database_url": f"sqlite:///{database}",
        "jitbot_ssh_krl": work / "ssh-krl" / "revoked.krl",  # in the throwaway folder, never the current directory
    }
    admin = load_settings(vault_token=openbao.root_token, **base)
    idp = None
    if jira is not None:  # the demo's payments-keys: its approvers sign in at OpenBao's own OIDC provider (step 14)
        people = {who: (CAST[who].lower(), secrets.token_urlsafe(12)) for who in STEP_UP_APPROVERS}
        for _login, password in people.values():
            narrator.hide(password)
        idp = OpenBaoIdP(openbao.addr, vault_client(openbao.addr, openbao.root_token), people)
        idp.enable()
        narrator.shell(
            "The operator",
            "bao auth enable userpass; bao auth enable -path=slack userpass; bao auth enable oidc",
            ["the IdP's logins; the mount whose aliases are Slack IDs (identity_alias_mount); Vault's OIDC auth method"],
        )
    synced = sync_vault(admin)
    # The database and SSH scopes' backends (a database engine, an SSH CA) and payments-keys' approvers' Vault entities
    # are set up in their own steps, which sync again: until then vault sync rightly names them as not set up, which on
    # the first screen reads as a failure.
    later = [line for line in synced if line.startswith(("error:", "warning:"))]
    shown = [line for line in synced if line not in later]
    if later:
        shown.append(
            f"(and {len(later)} line(s) naming scopes set up later: the database and SSH backends come in steps 11 and 12,"
            " payments-keys' approvers in step 14)"
        )
    narrator.shell("The operator", "jitbot vault sync", shown)
    for path, pairs in DEMO_SECRETS.items():
        written = bao.must("kv put", path, *pairs, token=openbao.root_token)
        shown = [p.split("=")[0] + "=…" for p in pairs]
        narrator.shell("The operator", f"bao kv put {path} {' '.join(shown)}", [f"version {written['data']['version']}"])
    bot_vault_token = _bot_token(narrator, bao, openbao.root_token)

    slack_token, signing_secret = "xoxb-demo-" + secrets.token_hex(12), secrets.token_hex(24)
    narrator.hide(slack_token)
    narrator.hide(signing_secret)
    standin = SlackStandIn(slack_token, users=cast_of(catalog))
    _on_exit(stack, standin.stop)
    standin.start()
    narrator.standin = standin
    bot = LocalBot(
        cli="bao",
        port=port,
        jitbot_ticket_watch=1,  # a closed ticket ends its grant within a second or two (the default looks every 30 s)
        slack_bot_token=slack_token,
        slack_signing_secret=signing_secret,
        slack_api_url=standin.url,
        vault_token=bot_vault_token,
        **base,
    )
    _on_exit(stack, bot.stop)
    bot.start()
    narrator.note(f"Slack stand-in at {standin.url} (no workspace); who is who in the shipped catalog:")
    for line in _people(catalog):
        narrator.say(f"- {line}", 4)
    narrator.note(f"jitbot serving POST /slack/events at {bot.url}; database {database}")
    client = SignedSlackClient(bot.url, signing_secret, standin=standin)
    return Stage(
        narrator, bao, standin, client, bot, bot.settings, operator_token=openbao.root_token, work=work, jira=jira, idp=idp
    )


def sync_lines(settings: Settings, operator_token: str) -> list[str]:
    """`jitbot vault sync` again, as the operator (with the root token), e.g. after a step set up what a scope needs."""
    return sync_vault(settings.model_copy(update={"vault_token": SecretStr(operator_token)}))


def demo_catalog(shipped: Path, folder: Path, *, web_url: str, jira_url: str) -> Path:
    """A copy of the shipped catalog and its policies in `folder`, with DEMO_WEB_URL, DEMO_TRACKERS and DEMO_SCOPES added."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(shipped.parent, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    catalog = folder / shipped.name
    text = catalog.read_text(encoding="utf-8")
    if "\n[groups]\n" not in text or not text.count("[settings]\n"):
        raise DemoError(f"the shipped catalog {shipped} has no [settings] and [groups] tables to add the demo's settings to")
    text = text.replace("[settings]\n", "[settings]\n" + DEMO_WEB_URL.format(web_url=web_url), 1)
    text = text.replace("\n[groups]\n", "\n" + DEMO_TRACKERS.format(jira_url=jira_url) + "[groups]\n", 1)
    catalog.write_text(text + DEMO_SCOPES, encoding="utf-8")
    return catalog


def _tracker_token(stack: ExitStack, narrator: Narrator, jira: JiraStandIn) -> None:
    """The bot reads a tracker's token from JITBOT_TRACKER_<NAME>_TOKEN; set for this run, put back when it ends."""
    variable, before = "JITBOT_TRACKER_JIRA_TOKEN", os.environ.get("JITBOT_TRACKER_JIRA_TOKEN")
    token = base64.b64decode(jira.auth.removeprefix("Basic ")).decode()
    narrator.hide(token)
    os.environ[variable] = token

    def restore() -> None:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before

    stack.callback(restore)


def _expected_noise(record: logging.LogRecord) -> bool:
    """False for Bolt's start-up notes that a token (e.g. $SLACK_BOT_TOKEN) goes unused (the wiring passes its own)
    and for the break-glass alert, which the transcript shows where it happens (_AlertsToTranscript)."""
    message = record.getMessage()
    unused_token = record.name.startswith("slack_bolt") and ("will be ignored" in message or "will be unused" in message)
    return not (unused_token or _is_alert(record))


def _is_alert(record: logging.LogRecord) -> bool:
    """The break-glass alert the scenario expects: the notifier logs every alert, and with no alert_channel in the
    catalog that log line is all there is. Any other alert means something went wrong and stays on stderr."""
    return record.name == "bot.notifier" and record.getMessage().startswith("alert: BREAK-GLASS ")


class _AlertsToTranscript(logging.Handler):
    """Hands the bot's alert log lines to the narrator, which prints them with the step they belong to."""

    def __init__(self, narrator: Narrator):
        super().__init__(logging.WARNING)
        self.narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        if _is_alert(record):
            self.narrator.bot_log(record.levelname.lower(), record.getMessage())


def cast_of(catalog: Catalog) -> dict[str, str]:
    """Everyone the catalog names (so the bot may DM them), with display names; the stand-in rejects anyone else."""
    named = set(catalog.members(catalog.settings.auditors) | catalog.members(catalog.settings.admins))
    named.update(user for members in catalog.groups.values() for user in members)
    for scope in catalog.scopes.values():
        principals = [*scope.requesters, *scope.all_approvers, *scope.escalation]
        principals += [p for rule in scope.auto_approve for p in rule.requesters]
        principals += scope.break_glass.requesters if scope.break_glass else []
        named.update(catalog.members(principals))
    named.discard("*")
    return {user: CAST.get(user, user) for user in sorted(named)}


def _bot_token(narrator: Narrator, bao: Bao, root_token: str) -> str:
    command = ("token create", "-policy=jitbot-bot", "-no-default-policy", "-orphan", "-ttl=1h", "-display-name=jitbot-bot")
    auth = bao.must(*command, token=root_token)["auth"]
    token = str(auth["client_token"])
    narrator.hide(token)
    if sorted(auth["policies"]) != ["jitbot-bot"]:
        raise DemoError(f"the bot's token should hold only jitbot-bot, it holds {auth['policies']}")
    narrator.shell(
        "The operator", "bao " + " ".join(command), [f"the bot's own token: policies {auth['policies']}, ttl 1h (not shown)"]
    )
    return token


def _people(catalog: Catalog) -> list[str]:
    def names(principals: list[str]) -> str:
        return ", ".join(CAST.get(u, u) for u in sorted(catalog.members(principals)))

    read, write = catalog.scopes["payments-read"], catalog.scopes["payments-write"]
    steps = " then ".join(f"{names(s.approvers)} ({s.name})" for s in write.steps)
    glass = names(read.break_glass.requesters) if read.break_glass else "nobody"
    return [
        f"payments-read: anyone requests; {names(read.all_approvers)} approve; {glass} may break the glass",
        f"payments-write: {names(write.requesters)} request; {steps} approve",
        f"developers ({names(['group:developers'])}) get staging-read automatically; {names(catalog.settings.auditors)} audits",
    ]


def _on_exit(stack: ExitStack, stop: Callable[[], None]) -> None:
    """Stop `stop`'s part when the demo ends, however it ends; a part that will not stop is reported, not raised."""

    def safely() -> None:
        try:
            stop()
        except Exception as error:  # the other parts must still be stopped
            print(f"jitbot demo: while stopping: {type(error).__name__}: {error}", file=sys.stderr)

    stack.callback(safely)
