"""Start-up checks of the bot's processes: each problem stops start-up with one line naming it and what to do."""

from __future__ import annotations

import errno
import logging
import re
import socket

from bot.settings import Settings
from grants.catalog import Catalog, load_catalog
from grants.credentials import CredentialError

log = logging.getLogger(__name__)

CREATE_BOT_TOKEN = "bao token create -policy=jitbot-bot -no-default-policy -orphan -period=24h"  # noqa: S105 - a command, not a secret
# Slack's answers that mean "this token will never work": anything else (a timeout, an outage) may pass by itself.
_DEAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}


class StartupError(Exception):
    """A problem that stops start-up; the message names it and what to do instead."""


def check(settings: Settings, host: str, port: int | None, slack: bool = True) -> Catalog:
    """Every check before anything starts, the catalog first; the catalog on success (CatalogError lists its problems)."""
    catalog = load_catalog(settings.jitbot_catalog)
    if port:
        check_port(host, port)
    check_database(settings)
    check_vault(settings)
    if slack:
        check_slack(settings)
    return catalog


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress: TIME_WAIT leftovers are no owner
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is already in use (another jitbot, or another program): stop it, "
                    "or choose another port with --port or PORT"
                ) from None
            if error.errno == errno.EACCES:
                raise StartupError(f"port {port} needs privileges on this machine: use one above 1023 (--port or PORT)") from None
            raise StartupError(f"cannot listen on {host}:{port} ({error.strerror}): check --host and --port") from None


def check_database(settings: Settings) -> None:
    from bot.wiring import database_unreachable

    why = database_unreachable(settings)
    if why is not None:
        shown = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", settings.database_url)  # never the password
        raise StartupError(f"cannot use the database {shown} ({why}): check DATABASE_URL and that the database server is running")


def vault_needs(settings: Settings) -> dict[str, str]:
    """The paths the bot's token must reach whatever the catalog (what the jitbot-bot policy grants)."""
    mount, _, path = settings.jitbot_audit_anchor.partition("/")
    needs = {
        "auth/token/revoke-accessor": "update",  # every vault_token grant ends by its accessor
        "auth/token/lookup-accessor": "update",
        "identity/group/name": "list",  # start-up reconciles the jit-* identity groups
        f"{mount}/data/{path}": "update",  # the audit anchor, written every second
    }
    return needs


def check_vault(settings: Settings) -> None:
    from bot.wiring import open_vault

    addr = settings.vault_addr
    try:
        session = open_vault(settings)  # with AppRole, this logs in
    except CredentialError as error:
        raise StartupError(f"{error}: check VAULT_ROLE_ID and VAULT_SECRET_ID") from None
    try:
        root, missing = session.standing(vault_needs(settings))
    except CredentialError as error:
        why = str(error)
        if why.startswith("cannot reach"):
            raise StartupError(
                f"cannot reach Vault at {addr} ({why.split('(')[-1]}: check VAULT_ADDR and that Vault is running"
            ) from None
        if why.startswith("capabilities-self"):
            raise StartupError(
                f"VAULT_TOKEN may not check its own capabilities ({why}): run `jitbot vault sync` (an admin token) "
                "so that the jitbot-bot policy allows sys/capabilities-self"
            ) from None
        if why.startswith(("Forbidden", "Unauthorized")):
            raise StartupError(
                f"Vault at {addr} refuses VAULT_TOKEN ({why}): it expired or was revoked; create a new one: {CREATE_BOT_TOKEN}"
            ) from None
        raise StartupError(f"Vault at {addr} cannot serve the bot ({why}): unseal it, or check VAULT_ADDR") from None
    finally:
        session.close()
    if root:
        # Allowed (a first try on a dev server), but never silently: this process would hold all of Vault.
        log.warning(f"VAULT_TOKEN is a root token: the bot needs only the jitbot-bot policy; use {CREATE_BOT_TOKEN}")
    elif missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise StartupError(
            f"VAULT_TOKEN may not do what the bot needs (no {shown}): give the bot a token with the jitbot-bot policy "
            f"(`jitbot vault sync` writes it): {CREATE_BOT_TOKEN}"
        )


def check_slack(settings: Settings) -> None:
    from slack_sdk.errors import SlackApiError

    from bot.wiring import slack_client

    client = slack_client(settings)
    try:
        client.auth_test()
    except SlackApiError as error:
        code = str(error.response.get("error"))
        if code in _DEAD_TOKEN:
            raise StartupError(
                f"Slack refuses SLACK_BOT_TOKEN ({code}): copy the Bot User OAuth Token (xoxb-…) from your app's "
                "OAuth & Permissions page"
            ) from None
        log.warning("Slack's auth.test answered %s; starting anyway (/readyz says when the workspace is known)", code)
    except Exception as error:
        # Slack down is no reason to stay down: the bot serves once it is back, and /readyz says so meanwhile.
        log.warning(
            "cannot reach Slack at %s (%s); starting anyway (/readyz says when the workspace is known)",
            settings.slack_api_url,
            type(error).__name__,
        )
