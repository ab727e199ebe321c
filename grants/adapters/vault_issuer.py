"""The Vault/OpenBao credential issuer: response-wrapped tokens from the jitbot token role, revoked by accessor."""

from __future__ import annotations

import re
from datetime import timedelta

import hvac
import requests
from hvac.exceptions import InvalidRequest, VaultError
from requests.exceptions import RequestException

from grants.catalog import Scope
from grants.domain import CredentialError, IssuedCredential, Request

DEFAULT_ROLE = "jitbot"  # the token role `jitbot vault sync` writes and the bot's policy may create from
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
        client.relogin = lambda: approle_login(client, role_id, secret_id)  # used when the token cannot be renewed
        return client
    if not token:
        raise ValueError("vault_client needs a token, or role_id and secret_id for an AppRole login")
    return hvac.Client(url=addr, token=token, timeout=timeout, verify=verify, session=_session())


def approle_login(client: hvac.Client, role_id: str, secret_id: str) -> None:
    try:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)  # sets client.token
    except BackendError as exc:
        raise CredentialError(f"AppRole login to Vault at {client.url} failed: {describe(exc)}") from None


def _session() -> requests.Session:
    session = requests.Session()
    # Settings come from jitbot's own configuration only: no proxy or CA variables, no ~/.netrc.
    session.trust_env = False
    return session


def describe(exc: BaseException) -> str:
    """A one-line, secret-free account of a Vault or transport error, e.g. `Forbidden: permission denied`."""
    if isinstance(exc, VaultError):
        text = f"{type(exc).__name__}: {_vault_errors(exc) or 'no detail'}"
    elif isinstance(exc, RequestException):
        text = f"cannot reach Vault ({type(exc).__name__})"
    else:
        text = type(exc).__name__
    return _TOKEN_SHAPE.sub("<redacted>", " ".join(text.split()))


def _vault_errors(exc: VaultError) -> str:
    errors = [str(error) for error in (exc.errors or [])] or [str(exc.args[0] or "")]
    cleaned = (_ERROR_COUNT.sub("", " ".join(error.replace("* ", "").split())) for error in errors)
    return "; ".join(error for error in cleaned if error)


class VaultIssuer:
    """Issues a grant as a response-wrapped token from a token role; the bot never sees the grant's token."""

    def __init__(
        self, client: hvac.Client, token_role: str = DEFAULT_ROLE, wrap_ttl: timedelta = timedelta(minutes=5), cli: str = "bao"
    ):
        self._client = client
        self._token_role = token_role
        self._wrap_ttl = wrap_ttl
        self._cli = cli

    def issue(self, request: Request, scope: Scope) -> IssuedCredential:
        """Create a token for exactly `scope`'s policies, living exactly `request.duration`, wrapped for delivery."""
        lifetime = f"{int(request.duration.total_seconds())}s"
        try:
            response = self._client.auth.token.create(
                role_name=self._token_role,  # the role pins orphan, non-renewable, allowed policies, max TTL
                policies=list(scope.policies),
                no_default_policy=scope.no_default_policy,
                ttl=lifetime,
                explicit_max_ttl=lifetime,  # with renewable=False: it can never outlive the approval
                renewable=False,
                display_name=f"jitbot-{request.id}",
                meta={"request_id": request.id, "requester": request.requester, "scope": request.scope},
                wrap_ttl=f"{int(self._wrap_ttl.total_seconds())}s",  # the bot only ever holds the wrapping token
            )
        except BackendError as exc:
            raise CredentialError(f"Vault refused to issue a token for {request.id} ({request.scope}): {describe(exc)}") from None
        wrap_info = response.get("wrap_info") if isinstance(response, dict) else None
        if not wrap_info:
            self._discard_unwrapped(response)
            raise CredentialError(f"Vault answered {request.id} without wrapping the token; nothing was delivered")
        return IssuedCredential(
            accessor=wrap_info["wrapped_accessor"],  # the real token's accessor, to revoke by
            delivery=wrap_info["token"],
            delivery_ttl=self._wrap_ttl,
            unwrap_hint=f"{self._cli} unwrap {wrap_info['token']}",
        )

    def _discard_unwrapped(self, response: object) -> None:
        # A proxy that strips X-Vault-Wrap-TTL would hand us the real token: never deliver it, end it at once.
        auth = response.get("auth") if isinstance(response, dict) else None
        accessor = auth.get("accessor") if isinstance(auth, dict) else None
        if accessor:
            try:
                self.revoke(accessor)
            except CredentialError:
                pass  # its own TTL still ends it

    def revoke(self, accessor: str) -> None:
        """Revoke by accessor; a token that is already gone (expired, revoked, never existed) counts as success."""
        if not accessor:
            raise CredentialError("no accessor to revoke")
        try:
            # OpenBao 2.x answers an unknown or already-revoked accessor with 200 and a warning ("No token found
            # with this accessor"); its lookup-accessor says 400 "invalid accessor" instead, a wording we accept
            # here too in case a server version answers revoke that way; a token that expired by its own TTL
            # a moment earlier answers 400 "token not found". All mean: nothing left to revoke.
            self._client.auth.token.revoke_accessor(accessor)
        except InvalidRequest as exc:
            if any(marker in _vault_errors(exc).lower() for marker in ("invalid accessor", "no token found", "token not found")):
                return
            raise CredentialError(f"Vault refused to revoke accessor {accessor}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"Vault could not revoke accessor {accessor}: {describe(exc)}") from None

    def keep_alive(self) -> None:
        """Renew the bot's own token once past half its life; when it cannot be (expired, not renewable
        any more) and the bot logs in by AppRole, log in again. Without this a periodic token dies."""
        try:
            info = self._client.auth.token.lookup_self()["data"]
            ttl, creation = int(info.get("ttl") or 0), int(info.get("creation_ttl") or 0)
            if info.get("renewable") and creation and ttl < creation / 2:
                self._client.auth.token.renew_self()
        except BackendError as exc:
            relogin = getattr(self._client, "relogin", None)
            if relogin is None:
                raise CredentialError(f"the bot's Vault token could not be renewed: {describe(exc)}") from None
            relogin()

    def healthy(self) -> bool:
        """Vault answers, is initialized and unsealed, and still accepts the bot's own token."""
        try:
            health = self._client.sys.read_health_status(method="GET", standby_ok=True)
            if not (isinstance(health, dict) and health.get("initialized") and not health.get("sealed")):
                return False
            self._client.auth.token.lookup_self()  # an expired or revoked bot token makes every issue fail
        except BackendError:
            return False
        return True
