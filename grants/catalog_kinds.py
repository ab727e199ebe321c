"""One catalog model per credential kind, the `Scope` union that picks one by `credential`, and each kind's checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, get_args

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator

from grants.catalog_scopes import ScopeBase
from grants.csr import Csr

if TYPE_CHECKING:
    from grants.catalog import Catalog


class VaultTokenScope(ScopeBase):
    """A response-wrapped Vault token carrying exactly `policies`."""

    vault_enforceable: ClassVar[bool] = True

    credential: Literal["vault_token"] = "vault_token"
    policies: list[str] = Field(min_length=1)
    no_default_policy: bool = False

    @property
    def policies_granted(self) -> list[str]:
        return list(self.policies)


class DatabaseScope(ScopeBase):
    """A dynamic database user from Vault's database secrets engine, dropped (sessions killed) at the end."""

    credential: Literal["database"]
    vault_enforceable: ClassVar[bool] = True  # its reader token's create can be held by a control group
    database_role: str = Field(min_length=1)
    database_mount: str = "database"
    connect_hint: str = ""


class SshScope(ScopeBase):
    """An SSH certificate signed by Vault's SSH CA for exactly `principals`."""

    credential: Literal["ssh"]
    vault_enforceable: ClassVar[bool] = True  # its one signing call can be held by a control group
    ssh_mount: str = "ssh-client-signer"
    ssh_role: str = Field(min_length=1)
    principals: list[str] = Field(min_length=1)

    needs_public_key: ClassVar[bool] = True
    # OpenSSH cannot cut a session when a certificate is revoked: the requester is told so.
    revoke_caveat: ClassVar[str] = (
        "New SSH logins are refused once hosts fetch the revocation list; sessions already open survive: log out of them."
    )

    @field_validator("principals")
    @classmethod
    def _no_wildcards(cls, value: list[str]) -> list[str]:
        # A certificate for root or for any principal is not an exception to a control: it is no control.
        bad = [p for p in value if p in ("root", "*") or not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", p)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: principals are plain login names, never `root` or `*`")
        return value


class VaultIdentityScope(ScopeBase):
    """The requester's own Vault identity (or a listed service's) raised by `policies` for the grant."""

    credential: Literal["vault_identity"]
    policies: list[str] = Field(min_length=1)
    on_behalf_of: list[str] = []

    ends_by_itself: ClassVar[bool] = False  # a group has no TTL: reconcile and the sweeper end it

    @property
    def policies_granted(self) -> list[str]:
        return list(self.policies)

    @property
    def services(self) -> list[str]:
        return list(self.on_behalf_of)

    @field_validator("on_behalf_of")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.fullmatch(r"entity:[A-Za-z0-9_.-]{1,64}", v)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: name services as `entity:NAME`")
        return value


class PkiScope(ScopeBase):
    """A short-lived client certificate signed by Vault's PKI engine for the requester's own CSR, named by a template."""

    credential: Literal["pki"]
    vault_enforceable: ClassVar[bool] = True  # its one signing call can be held by a control group
    pki_mount: str = Field(default="pki", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    pki_role: str = Field(default="", pattern=r"^(jitbot-[a-z0-9_-]{1,60})?$")  # "": jitbot-<scope>
    common_name: str
    key_types: list[Literal["ec", "rsa", "ed25519"]] = Field(default=["ec"], min_length=1)

    needs_csr: ClassVar[bool] = True
    revoke_caveat: ClassVar[str] = (
        "Services that check the CRL or OCSP refuse the certificate at once; one that checks neither accepts it "
        "until it expires, and TLS connections already open survive: close them."
    )

    def role(self, scope_name: str) -> str:
        return self.pki_role or f"jitbot-{scope_name}"

    def name_for(self, requester: str) -> str:
        """The one DNS name a requester's certificate carries (`{user}` = their Slack user ID, lower-cased)."""
        return self.common_name.replace("{user}", requester.lower())

    def csr_problems(self, csr: Csr, requester: str) -> list[str]:
        problems = csr.name_problems(self.name_for(requester))
        if csr.key_type not in self.key_types:
            problems.append(f"its key is {csr.key_type}; this scope takes {' or '.join(self.key_types)} keys")
        return problems

    @field_validator("common_name")
    @classmethod
    def _one_name(cls, value: str) -> str:
        # A wildcard or a name without the requester in it would be one certificate for many people: no control.
        domain = value.removeprefix("{user}.")
        if domain == value or "{" in domain or "*" in domain or not re.fullmatch(r"([a-z0-9-]{1,63}\.)+[a-z]{2,63}", domain):
            raise ValueError("must be `{user}.` followed by a lower-case domain, e.g. `{user}.jit.internal`; never a wildcard")
        return value


def _credential_kind(value: object) -> str:
    """The discriminator: `credential`, which defaults to vault_token as it always has."""
    if isinstance(value, dict):
        return str(value.get("credential", "vault_token"))
    return str(getattr(value, "credential", "vault_token"))


Scope = Annotated[
    Annotated[VaultTokenScope, Tag("vault_token")]
    | Annotated[DatabaseScope, Tag("database")]
    | Annotated[SshScope, Tag("ssh")]
    | Annotated[VaultIdentityScope, Tag("vault_identity")]
    | Annotated[PkiScope, Tag("pki")],
    Discriminator(_credential_kind),
]
SCOPE = TypeAdapter(Scope)


def kind_models() -> dict[str, type[ScopeBase]]:
    """Each credential kind's catalog model, read off the `Scope` union's arms (so a new kind is still one arm)."""
    union = get_args(Scope)[0]
    return {get_args(arm)[1].tag: get_args(arm)[0] for arm in get_args(union)}


def revoke_caveat(kind: str) -> str:
    """What an early revoke of this kind's credential cannot do ("" when it ends everything)."""
    model = kind_models().get(kind)
    return model.revoke_caveat if model is not None else ""


def kind_problems(where: str, scope: Scope, policy_dir: Path | None) -> list[str]:
    """What a kind needs beyond its fields' shapes, so that the bot can actually issue it."""
    problems = []
    if isinstance(scope, SshScope) and not scope.ssh_role.startswith("jit-"):
        # The bot's policy may sign only with `jit-*` roles: any other role would be refused at the first grant.
        problems.append(f"{where}.ssh_role: `{scope.ssh_role}` must start with `jit-` (the bot signs only with jit-* roles)")
    bot_policy = policy_dir / "jitbot-bot.hcl" if policy_dir is not None else None
    if isinstance(scope, PkiScope) and bot_policy is not None and bot_policy.is_file():
        # The bot signs only where its policy lets it: a mount it may not sign with would fail at the first grant.
        if f'path "{scope.pki_mount}/sign/jitbot-*"' not in bot_policy.read_text(encoding="utf-8"):
            problems.append(f'{where}.pki_mount: jitbot-bot.hcl has no `path "{scope.pki_mount}/sign/jitbot-*"`; add it there')
    if isinstance(scope, VaultIdentityScope) and bot_policy is not None and bot_policy.is_file():
        # The bot's policy pins the exact policy sets identity groups may carry; an unpinned set is refused by Vault.
        joined = ",".join(scope.policies)
        if f'"{joined}"' not in bot_policy.read_text(encoding="utf-8"):
            problems.append(
                f"{where}.policies: jitbot-bot.hcl does not allow identity groups with `{joined}`; add it to the "
                '`policies` list of path "identity/group/name/jit-*" there'
            )
    return problems


def shared_database_roles(catalog: Catalog) -> list[str]:
    """A vault-enforced database scope's role that a bot-approved scope also reads: the bot's token could mint the same
    login through the other scope's reader, unheld, and the control group would guard nothing."""
    readers: dict[tuple[str, str], list[tuple[str, bool]]] = {}
    for name, scope in sorted(catalog.scopes.items()):
        if isinstance(scope, DatabaseScope):
            readers.setdefault((scope.database_mount, scope.database_role), []).append((name, scope.vault_enforced))
    problems = []
    for (mount, role), scopes in sorted(readers.items()):
        held = [name for name, enforced in scopes if enforced]
        loose = [name for name, enforced in scopes if not enforced]
        for name in held if loose else []:
            problems.append(
                f'scopes.{name}.database_role: {mount}/{role} is also read by {", ".join(loose)} (approval = "bot"), '
                'whose readers the bot mints alone; give the approval = "vault" scope a database role of its own'
            )
    return problems
