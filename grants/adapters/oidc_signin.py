"""The step-up page's sign-in: Vault's OIDC auth method (authorization code + PKCE against the IdP), the approver's
minute-long Vault token used once and revoked, never stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import hvac
import requests
from requests.exceptions import RequestException

from grants.adapters.control_groups import VaultControlGroups
from grants.approval_catalog import StepUpSettings
from grants.stepup import SignInRefused


class VaultApprover:
    """An approver signed in through Vault: their entity, the IdP's issuer and subject, and their token (private)."""

    def __init__(self, gates: VaultControlGroups, token: str, entity_id: str, meta: dict[str, str]):
        self._gates, self._token = gates, token
        self.entity_id = entity_id
        self.issuer, self.subject = meta.get("idp_issuer", ""), meta.get("idp_subject", "")

    def authorize(self, request_id: str) -> bool:
        return self._gates.authorize(request_id, self._token, self.entity_id)


class VaultSignIn:
    """Implements grants.stepup.SignInFlow with the OIDC role `jitbot vault sync` writes (token: authorize only, 60 s)."""

    def __init__(self, client: hvac.Client, gates: VaultControlGroups, settings: StepUpSettings, callback_url: str):
        self._client, self._gates, self._settings, self._callback = client, gates, settings, callback_url
        self._origin: str | None = None

    def begin(self, client_nonce: str) -> tuple[str, str]:
        # Vault makes the PKCE pair, the OIDC nonce and the state; client_nonce binds the state to this browser's cookie.
        answer = self._post(
            "oidc/auth_url",
            {"role": self._settings.oidc_role, "redirect_uri": self._callback, "client_nonce": client_nonce},
        )
        url = str((answer.get("data") or {}).get("auth_url") or "")
        if not url:
            raise SignInRefused(
                "Vault gave no sign-in address: is the OIDC role written (`jitbot vault sync`)?", "step_up_idp_down"
            )
        state = dict(_query(url)).get("state", "")
        # prompt=login: a fresh sign-in at the IdP even when the browser has a session there (Vault does not send it).
        return f"{url}&{urlencode({'prompt': 'login'})}", state

    def idp_origin(self) -> str:
        if self._origin is None:
            config = self._get(f"auth/{self._settings.oidc_mount}/config")
            discovery = str((config.get("data") or {}).get("oidc_discovery_url") or "")
            parts = urlsplit(discovery)
            self._origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        return self._origin

    @contextmanager
    def complete(self, state: str, code: str, client_nonce: str, slack_user: str) -> Iterator[VaultApprover]:
        answer = self._call(
            "GET", f"auth/{self._settings.oidc_mount}/oidc/callback", {"state": state, "code": code, "client_nonce": client_nonce}
        )
        auth = answer.get("auth") or {}
        token = str(auth.get("client_token") or "")
        if not token:
            raise SignInRefused("Vault did not sign you in.", "step_up_signin_failed")
        try:
            entity = str(auth.get("entity_id") or "")
            expected = self._gates.entity_of(slack_user)
            # The person who signed in must be the one who clicked Approve: their Vault entity, not just anyone's.
            if not entity or entity != expected:
                raise SignInRefused(
                    "You signed in as someone else than the person who clicked Approve; nothing was recorded.",
                    "step_up_wrong_person",
                )
            yield VaultApprover(self._gates, token, entity, dict(auth.get("metadata") or {}))
        finally:
            try:
                self._call("POST", "auth/token/revoke-self", None, token)
            except SignInRefused:
                pass  # its 60 s TTL ends it

    def _post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"auth/{self._settings.oidc_mount}/{path}", data)

    def _get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None, self._client.token)

    def _call(self, method: str, path: str, data: dict[str, Any] | None, token: str | None = None) -> dict[str, Any]:
        # Without the bot's token unless asked: the OIDC endpoints are unauthenticated, and the approver's is theirs.
        headers = {"X-Vault-Token": token} if token else {}
        params, body = (data, None) if method == "GET" else (None, data)
        try:
            response = requests.request(
                method, f"{self._client.url}/v1/{path}", params=params, json=body, headers=headers, timeout=10,
                verify=self._client.session.verify,
            )  # fmt: skip
        except RequestException as exc:
            raise SignInRefused(
                f"Vault cannot be reached ({type(exc).__name__}); nothing was recorded.", "step_up_idp_down"
            ) from None
        answer = response.json() if response.content else {}
        if response.status_code >= 400:
            errors = "; ".join((answer or {}).get("errors") or []) or f"HTTP {response.status_code}"
            raise SignInRefused(f"Vault refused the sign-in: {errors}", "step_up_signin_failed")
        return answer if isinstance(answer, dict) else {}


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(urlsplit(url).query)
