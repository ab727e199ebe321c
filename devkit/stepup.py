"""OpenBao as the approvers' IdP (its own OIDC provider over userpass logins with TOTP login MFA, Vault's OIDC auth
method pointed at it, entities linked to Slack IDs) and a step-up sign-in driven over plain HTTP, as a browser would.

`jitbot demo` signs its approvers in with it; the step-up tests build their stage on it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import hvac
import requests

LINK = re.compile(r"<(http://[^|>]+/stepup/start\?t=[^|>]+)\|")  # the link in the Approve button's private reply


class SignInError(Exception):
    """A step of the sign-in did not answer as OpenBao or the step-up page should; the message says which."""


def totp_at(secret: str, at: float, period: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1), as OpenBao's TOTP method computes it with the settings `identity_provider` writes."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at // period)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


@dataclass
class OpenBaoIdP:
    """What the operator sets up once on OpenBao, and what an approver's IdP login does without a browser.

    `people`: Slack user ID → (login, password) of the userpass account that stands for the person at the IdP."""

    addr: str
    root: hvac.Client = field(repr=False)
    people: dict[str, tuple[str, str]] = field(repr=False)
    alias_mount: str = "slack"  # the catalog's identity_alias_mount: entity aliases named by Slack user IDs
    entities: dict[str, str] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict, repr=False)
    userpass_accessor: str = ""
    oidc_client_id: str = ""
    mfa_method: str = ""
    _used: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def enable(self) -> None:
        """Auth methods: `userpass` (the IdP's logins), the alias mount (a userpass mount used only for its aliases) and
        `oidc` (Vault's OIDC auth method, which the step-up page signs approvers in through). Present ones are kept."""
        mounted = self.root.read("sys/auth")["data"]
        for path, kind in (("userpass", "userpass"), (self.alias_mount, "userpass"), ("oidc", "oidc")):
            if f"{path.rstrip('/')}/" not in mounted:
                self.root.sys.enable_auth_method(kind, path=path)
        self.userpass_accessor = self._accessor("userpass")

    def _accessor(self, path: str) -> str:
        return str(self.root.read("sys/auth")["data"][f"{path.rstrip('/')}/"]["accessor"])

    def link(self, slack_user: str) -> str:
        """An entity for the person: a userpass login (the IdP side), aliases by the Slack ID and on `oidc`."""
        name, password = self.people[slack_user]
        self.root.write_data(
            f"auth/userpass/users/{name}", data={"password": password, "token_policies": "default,jitbot-approver"}
        )
        entity = self.root.write_data("identity/entity", data={"name": name, "metadata": {"email": f"{name}@jit.test"}})
        entity_id = str(entity["data"]["id"])
        aliases = (
            (self.userpass_accessor, name),
            (self._accessor(self.alias_mount), slack_user),
            (self._accessor("oidc"), entity_id),
        )
        for mount, alias in aliases:
            self.root.write_data(
                "identity/entity-alias", data={"name": alias, "canonical_id": entity_id, "mount_accessor": mount}
            )
        self.entities[slack_user] = entity_id
        return entity_id

    def identity_provider(self, redirect_uri: str) -> None:
        """The IdP approvers sign in at: OpenBao's own OIDC provider over its userpass logins, with TOTP login MFA
        (a TOTP secret per linked person); and Vault's OIDC auth method (mount `oidc`) pointed at it. Call after `link`."""
        root = self.root
        root.write_data("identity/oidc/assignment/jitbot-approvers", data={"entity_ids": sorted(self.entities.values())})
        root.write_data("identity/oidc/key/jitbot", data={"allowed_client_ids": "*", "algorithm": "RS256"})
        root.write_data(
            "identity/oidc/client/jitbot",
            data={"redirect_uris": [redirect_uri], "assignments": ["jitbot-approvers"], "key": "jitbot", "id_token_ttl": "5m"},
        )
        client = root.read("identity/oidc/client/jitbot")["data"]
        self.oidc_client_id = str(client["client_id"])
        root.write_data("identity/oidc/scope/email", data={"template": '{"email": {{identity.entity.metadata.email}}}'})
        root.write_data(
            "identity/oidc/provider/jitbot", data={"allowed_client_ids": [self.oidc_client_id], "scopes_supported": ["email"]}
        )
        issuer = requests.get(f"{self.addr}/v1/identity/oidc/provider/jitbot/.well-known/openid-configuration", timeout=10).json()
        root.write_data(
            "auth/oidc/config",
            data={
                "oidc_discovery_url": issuer["issuer"],
                "oidc_client_id": self.oidc_client_id,
                "oidc_client_secret": client["client_secret"],
            },
        )
        method = root.write_data(
            "identity/mfa/method/totp", data={"issuer": "OpenBao", "period": 30, "key_size": 20, "algorithm": "SHA1", "digits": 6}
        )
        self.mfa_method = str(method["data"]["method_id"])
        for person, entity in self.entities.items():
            url = root.write_data(
                "identity/mfa/method/totp/admin-generate", data={"method_id": self.mfa_method, "entity_id": entity}
            )
            self.totp[person] = parse_qs(urlsplit(url["data"]["url"]).query)["secret"][0]
        root.write_data(
            "identity/mfa/login-enforcement/jitbot-approvers",
            data={"mfa_method_ids": [self.mfa_method], "auth_method_accessors": [self.userpass_accessor]},
        )

    def passcode(self, slack_user: str) -> str:
        """A TOTP code OpenBao has not seen yet (each code works once): waits for the next period when needed."""
        secret = self.totp[slack_user]
        while True:
            now = time.time()
            # OpenBao's TOTP method allows one period of skew (its default): three fresh codes per period.
            for code in (totp_at(secret, now), totp_at(secret, now + 30), totp_at(secret, now - 30)):
                if (slack_user, code) not in self._used:
                    self._used.add((slack_user, code))
                    return code
            time.sleep(1)

    def idp_login(self, slack_user: str) -> str:
        """The person's IdP session without a browser: password, then the TOTP second factor (login MFA)."""
        name, password = self.people[slack_user]
        first = requests.post(f"{self.addr}/v1/auth/userpass/login/{name}", json={"password": password}, timeout=10)
        mfa = (first.json().get("auth") or {}).get("mfa_requirement")
        if first.status_code != 200 or not mfa:
            raise SignInError(f"the IdP login of {name} wanted no second factor or failed: HTTP {first.status_code}")
        payload = {"mfa_request_id": mfa["mfa_request_id"], "mfa_payload": {self.mfa_method: [self.passcode(slack_user)]}}
        done = requests.post(f"{self.addr}/v1/sys/mfa/validate", json=payload, timeout=10)
        if done.status_code != 200:
            raise SignInError(f"the TOTP code of {name} was refused: HTTP {done.status_code} {done.text[:200]}")
        return str(done.json()["auth"]["client_token"])

    def authorize_at_idp(self, authorization_url: str, idp_token: str) -> str:
        """What the IdP's login page does once the person signed in: the authorization code for that URL's request."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        answer = requests.get(
            f"{self.addr}/v1/identity/oidc/provider/jitbot/authorize",
            params=query,
            headers={"X-Vault-Token": idp_token},
            timeout=10,
        )
        if answer.status_code != 200:
            raise SignInError(f"the IdP gave no authorization code: HTTP {answer.status_code} {answer.text[:200]}")
        return str(answer.json()["code"])


@dataclass
class StepUpBrowser:
    """What a browser does on the step-up page, over plain HTTP with a cookie jar; the IdP's login is its API (+ TOTP)."""

    url: str  # the bot's base URL (the catalog's web_url)
    idp: OpenBaoIdP
    session: requests.Session = field(default_factory=requests.Session)

    def open(self, link: str) -> requests.Response:
        return self.session.get(link, timeout=10)

    def submit(self, page: requests.Response, **headers: str) -> requests.Response:
        """Press the page's one button (**Sign in and approve**): its form, with the page's own hidden fields."""
        fields = dict(re.findall(r'name="(t|csrf)" value="([^"]+)"', page.text))
        return self.session.post(
            f"{self.url}/stepup/start", data=fields, headers={"Origin": self.url, **headers}, allow_redirects=False, timeout=10
        )

    def sign_in(self, link: str, who: str) -> requests.Response:
        """Open the link, press the button, sign in at the IdP as `who` (password + TOTP), come back: the page's answer."""
        started = self.submit(self.open(link))
        if started.status_code != 303:
            raise SignInError(
                f"the step-up page did not send the browser to the IdP: HTTP {started.status_code} {started.text[:200]}"
            )
        return self.come_back(started.headers["Location"], who)

    def come_back(self, idp_url: str, who: str) -> requests.Response:
        code = self.idp.authorize_at_idp(idp_url, self.idp.idp_login(who))
        state = parse_qs(urlsplit(idp_url).query)["state"][0]
        return self.session.get(f"{self.url}/stepup/callback", params={"state": state, "code": code}, timeout=10)
