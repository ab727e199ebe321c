"""The bot's Vault/OpenBao connection: a client for exactly the configured server, secret-free errors, token upkeep."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import hvac
import requests
from hvac.exceptions import VaultError
from requests.exceptions import RequestException

from grants.credentials import CredentialError

BackendError = (VaultError, RequestException)
_ERROR_COUNT = re.compile(r"^\d+ errors? occurred:\s*")  # Go's multierror preamble
# Anything shaped like a Vault/OpenBao token (service, batch, recovery; legacy and `hv`-prefixed) is cut from messages.
_TOKEN_SHAPE = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_.-]{16,}")


def vault_client(
    addr: str,
    token: str | None = None,
    role_id: str | None = None,
    secret_id: str | None = None,
    *,
    timeout: float = 10.0,
    verify: bool | str = True,
) -> hvac.Client:
    """A client for exactly `addr`, by token or by AppRole login (when `role_id` and `secret_id` are given).

    url, token and verify are always passed: left out, hvac silently falls back to VAULT_ADDR, VAULT_TOKEN,
    ~/.vault-token and VAULT_CACERT, and only the bot's settings may read the environment.
    """
    if role_id and secret_id:
        client = hvac.Client(url=addr, token="", timeout=timeout, verify=verify, session=_session())
        approle_login(client, role_id, secret_id)
        return client
    if not token:
        raise ValueError("vault_client needs a token, or role_id and secret_id for an AppRole login")
    return hvac.Client(url=addr, token=token, timeout=timeout, verify=verify, session=_session())


def approle_login(client: hvac.Client, role_id: str, secret_id: str) -> None:
    try:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)  # sets client.token
    except BackendError as exc:
        raise CredentialError(f"AppRole login to Vault at {client.url} failed: {describe(exc)}") from None


def vault_now(client: hvac.Client) -> datetime:
    """Vault's own clock (`sys/health`'s server time, whole seconds): what certificates and TTLs are measured on."""
    try:
        health = client.sys.read_health_status(method="GET", standby_ok=True)
        return datetime.fromtimestamp(int(health["server_time_utc"]), UTC)
    except (*BackendError, KeyError, TypeError, ValueError) as exc:
        raise CredentialError(f"cannot read Vault's clock: {describe(exc)}") from None


def _session() -> requests.Session:
    session = requests.Session()
    # Settings come from jitbot's own configuration only: no proxy or CA variables, no ~/.netrc.
    session.trust_env = False
    return session


def describe(exc: BaseException) -> str:
    """A one-line, secret-free account of a Vault or transport error, e.g. `Forbidden: permission denied`."""
    if isinstance(exc, VaultError):
        text = f"{type(exc).__name__}: {vault_errors(exc) or 'no detail'}"
    elif isinstance(exc, RequestException):
        text = f"cannot reach Vault ({type(exc).__name__})"
    else:
        text = type(exc).__name__
    return _TOKEN_SHAPE.sub("<redacted>", " ".join(text.split()))


def vault_errors(exc: VaultError) -> str:
    errors = [str(error) for error in (exc.errors or [])] or [str(exc.args[0] or "")]
    cleaned = (_ERROR_COUNT.sub("", " ".join(error.replace("* ", "").split())) for error in errors)
    return "; ".join(error for error in cleaned if error)


class VaultSession:
    """The bot's own standing with Vault: its token kept alive, and whether Vault answers at all."""

    def __init__(self, client: hvac.Client, relogin: Callable[[], None] | None = None):
        self.client = client
        self._relogin = relogin

    def keep_alive(self) -> None:
        """Renew the bot's own token once past half its life; when it cannot be (expired, not renewable
        any more) and the bot logs in by AppRole, log in again. Without this a periodic token dies."""
        try:
            info = self.client.auth.token.lookup_self()["data"]
            ttl, creation = int(info.get("ttl") or 0), int(info.get("creation_ttl") or 0)
            if info.get("renewable") and creation and ttl < creation / 2:
                self.client.auth.token.renew_self()
        except BackendError as exc:
            if self._relogin is None:
                raise CredentialError(f"the bot's Vault token could not be renewed: {describe(exc)}") from None
            self._relogin()

    def close(self) -> None:
        """Close the HTTP connections kept open to Vault."""
        self.client.adapter.close()

    def standing(self, needs: dict[str, str]) -> tuple[bool, list[str]]:
        """Whether the bot's token is a root token, and which of `needs` ({path: capability}) it lacks, as
        "capability path"; raises CredentialError when Vault cannot say (unreachable, sealed, token refused)."""
        try:
            info = self.client.auth.token.lookup_self()["data"]
            if "root" in (info.get("policies") or []):
                return True, []
        except BackendError as exc:
            raise CredentialError(describe(exc)) from None
        try:
            answer = self.client.adapter.post("/v1/sys/capabilities-self", json={"paths": list(needs)})
        except BackendError as exc:
            raise CredentialError(f"capabilities-self: {describe(exc)}") from None
        held = answer.get("data", answer) if isinstance(answer, dict) else {}
        missing = [f"{cap} {path}" for path, cap in needs.items() if not {cap, "root"} & set(held.get(path) or [])]
        return False, missing

    def healthy(self) -> bool:
        """Vault answers, is initialized and unsealed, and still accepts the bot's own token."""
        try:
            health = self.client.sys.read_health_status(method="GET", standby_ok=True)
            if not (isinstance(health, dict) and health.get("initialized") and not health.get("sealed")):
                return False
            self.client.auth.token.lookup_self()  # an expired or revoked bot token makes every issue fail
        except BackendError:
            return False
        return True


def vault_session(
    addr: str, token: str | None = None, role_id: str | None = None, secret_id: str | None = None, **options: Any
) -> VaultSession:
    """A client and its upkeep; with AppRole the session logs in again when its token cannot be renewed."""
    client = vault_client(addr, token, role_id, secret_id, **options)
    if role_id and secret_id:
        return VaultSession(client, lambda: approle_login(client, role_id, secret_id))
    return VaultSession(client)
