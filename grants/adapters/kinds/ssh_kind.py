"""The `ssh` kind behind the seam: certificates for a registered public key; early revoke by the KRL built from the database."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import hvac

from grants.adapters.kinds.ssh_ca import (
    DEFAULT_MOUNT,
    ca_public_key,
    certificate_from,
    sign_call,
    sign_certificate,
    write_ssh_role,
)  # fmt: skip
from grants.adapters.kinds.ssh_krl import write_krl_bytes
from grants.adapters.kinds.ssh_revocations import SshRevocations
from grants.adapters.kinds.vault_token import Redeemer, stanza_rules
from grants.adapters.vault_client import vault_now
from grants.catalog import Catalog, Scope
from grants.catalog_kinds import SshScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    IssuedCredential,
    IssueOrder,
    Orphan,
)
from grants.ssh_keys import SshKeyError, SshPublicKey, parse_public_key

log = logging.getLogger(__name__)

KIND = "ssh"
# A certificate's end is whole seconds and the clock read is too: this much past the approved end is rounding.
_ROUNDING = timedelta(seconds=2)


class SshKind:
    """Signs with one SSH CA mount. Every certificate it signs, and each early revoke, is a row in the shared database
    (`SshRevocations`): any replica builds the KRL hosts fetch from those rows, and a revoke needs no Vault."""

    kind = KIND

    def __init__(
        self,
        client: hvac.Client,
        revocations: SshRevocations | None,
        mount: str = DEFAULT_MOUNT,
        mirror: Path | None = None,
        gate: Redeemer | None = None,
    ):
        self._client, self._revocations, self._mount, self._mirror = client, revocations, mount, mirror
        self._gate = gate  # vault-enforced scopes: where Vault's answer to the held signing call is released

    def hold(self, order: IssueOrder, scope: Scope) -> Any:
        """A vault-enforced grant's signing call, made when it is requested: Vault answers it pending (a control group)."""
        key = self._checked(order, scope)
        assert isinstance(scope, SshScope)
        answer = sign_call(
            self._client, scope.ssh_role, key.openssh, list(scope.principals), order.ttl, order.request_id, self._mount
        )
        if ((answer or {}).get("data") or {}).get("signed_key"):  # signed without the approvers: the policy is not synced
            certificate = certificate_from(
                answer, scope.ssh_role, key.openssh, list(scope.principals), order.request_id, self._mount
            )
            revocations = self._db()
            revocations.signed(
                self._mount,
                certificate.serial,
                order.request_id,
                certificate.valid_before,
                ca_public_key(self._client, self._mount),
            )
            revocations.revoke(self._mount, certificate.serial)  # listed in every replica's KRL from now on
        return answer

    def guarded_path(self, scope_name: str, scope: Scope) -> tuple[str, str] | None:
        """The signing path a control group guards, with the bot policy's parameters for it (an exact path wins over
        the `jit-*` glob, so it repeats them)."""
        if not isinstance(scope, SshScope):
            return None
        rules = stanza_rules(("update",), ("public_key", "valid_principals", "ttl", "key_id"), {"cert_type": '"user"'})
        return f"{scope.ssh_mount}/sign/{scope.ssh_role}", rules

    def _checked(self, order: IssueOrder, scope: Scope) -> SshPublicKey:
        if not isinstance(scope, SshScope):
            raise CredentialError(f"{order.scope} is not an ssh scope")
        if scope.ssh_mount != self._mount:
            raise CredentialError(f"{order.scope} uses SSH mount {scope.ssh_mount}; this bot signs with {self._mount} only")
        if not order.public_key:
            raise CredentialError("no SSH public key is registered for the requester")
        if order.ttl.total_seconds() < 1:
            # Never ask Vault to sign with ttl 0: it would take the role's default, the scope's longest total.
            raise CredentialError(f"{order.request_id}: no time left to grant")
        try:
            return parse_public_key(order.public_key)
        except SshKeyError as error:
            raise CredentialError(str(error)) from None

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        key = self._checked(order, scope)
        assert isinstance(scope, SshScope)
        revocations = self._db()
        ca_key = ca_public_key(self._client, self._mount)
        principals = list(scope.principals)
        if scope.vault_enforced:
            # Signed when the approvers' own identities authorized the call held at request time, not before.
            if self._gate is None:
                raise CredentialError(f"{order.scope} is enforced by Vault, but this bot has no control groups wired")
            answer = self._gate.release(order.request_id)
            certificate = certificate_from(answer, scope.ssh_role, key.openssh, principals, order.request_id, self._mount)
        else:
            certificate = sign_certificate(
                self._client, scope.ssh_role, key.openssh, principals, order.ttl, order.request_id, self._mount
            )
        # Recorded before it is delivered: a certificate the table does not know could not be revoked by its end.
        revocations.signed(self._mount, certificate.serial, order.request_id, certificate.valid_before, ca_key)
        until = f"{certificate.valid_before:%Y-%m-%d %H:%M:%S} UTC"
        return IssuedCredential(
            handle=CredentialHandle(KIND, str(certificate.serial)),
            delivery=Delivery(
                summary=f"an SSH certificate for {', '.join(certificate.principals)}",
                lines=(
                    f"Principals: {', '.join(certificate.principals)}. Valid until {until}.",
                    "Save it beside your private key, named like it plus `-cert.pub` (e.g. `~/.ssh/id_ed25519-cert.pub`); "
                    "inspect it with `ssh-keygen -L -f ~/.ssh/id_ed25519-cert.pub`.",
                    "Sessions already open are not cut when it expires or is revoked: log out when you are done.",
                ),
                code=certificate.text,  # public: nothing secret passes through the bot
            ),
            valid_until=certificate.valid_before,
            facts={
                "serial": certificate.serial,  # with the key ID, what sshd logs for each login
                "key_id": certificate.key_id,
                "key_fingerprint": key.fingerprint,
                "principals": list(certificate.principals),
            },
        )

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """Vault cannot revoke a certificate: mark its serial revoked in the database, which every replica's KRL
        (`GET /ssh/revoked.krl`) lists from then on. No Vault call: a revoke works while Vault is away."""
        try:
            serial = int(handle.id)
        except ValueError:
            raise CredentialError(f"`{handle.id}` is not a certificate serial") from None
        self._db().revoke(self._mount, serial)
        if self._mirror is not None:
            try:
                self.krl_bytes()  # rewrites the JITBOT_SSH_KRL copy too
            except Exception:
                log.exception("the revoke is recorded, but the KRL copy at %s could not be written", self._mirror)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """A certificate's validity is fixed: sign again for the rest (the caller revokes the old one). Nothing can
        recall a certificate, so it must end no later than the grant's recorded end (`order.until`) whatever the
        bot's clock says: the rest is measured on Vault's clock, which stamps the validity, and the result checked."""
        rest = order.until - vault_now(self._client)
        if rest < order.ttl:  # our clock is behind Vault's (it jumped back): Vault's reckoning wins
            order = replace(order, ttl=rest)
        issued = self.issue(order, scope)
        if issued.valid_until is not None and issued.valid_until > order.until + _ROUNDING:
            self.revoke(issued.handle, order.request_id)  # hosts refuse it from the next KRL fetch; it is never delivered
            raise CredentialError(
                f"Vault signed {order.request_id}'s certificate until {issued.valid_until:%H:%M:%S}, past the approved "
                f"end {order.until:%H:%M:%S} UTC; not delivered"
            )
        return issued

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        # A certificate lives until its validity (the core knows the grant's end) unless its serial is revoked.
        try:
            serial = int(handle.id)
        except ValueError:
            return CredentialStatus.GONE
        return CredentialStatus.GONE if self._db().is_revoked(self._mount, serial) else CredentialStatus.ALIVE

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return []  # a certificate ends by itself at its validity

    def sync(self, catalog: Catalog) -> list[str]:
        lines = []
        for name, scope in sorted(catalog.scopes.items()):
            if not isinstance(scope, SshScope):
                continue
            if scope.ssh_mount != self._mount:
                lines.append(f"error: scope {name} uses SSH mount {scope.ssh_mount}; this bot signs with {self._mount} only")
                continue
            try:
                lines.append(write_ssh_role(self._client, scope.ssh_role, list(scope.principals), scope.max_total, self._mount))
            except CredentialError as error:
                if "permission denied" in str(error):
                    raise  # a token that may not write roles (the bot's own): not a missing mount
                # The operator owns the SSH CA mount: without it there is nothing to write yet; say so and go on.
                lines.append(f"error: scope {name}: {error}; enable the `{self._mount}` SSH mount with its CA, then sync again")
                return lines
        return lines

    def krl_bytes(self) -> bytes:
        """The current KRL, for `GET /ssh/revoked.krl`: built from the database with the CA key cached there (Vault is
        read only until the first certificate is signed or the first list served)."""
        revocations = self._db()
        ca_key = revocations.ca_key(self._mount)
        if ca_key is None:
            ca_key = ca_public_key(self._client, self._mount)
            revocations.remember_ca(self._mount, ca_key)
        data = revocations.krl(self._mount, ca_key)
        if self._mirror is not None:
            write_krl_bytes(self._mirror, data)
        return data

    def adopt_legacy(self, revoked_file: Path) -> int:
        """Revoke the serials an older bot kept in `revoked_file` (JITBOT_SSH_KRL's `.revoked.json`) once, so an
        upgrade un-revokes nothing; the file is then renamed `.imported`. How many serials were taken."""
        try:
            serials = [int(serial) for serial in json.loads(revoked_file.read_text(encoding="utf-8"))]
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise CredentialError(f"the old SSH revocation list {revoked_file} is unreadable: {exc}") from None
        for serial in serials:
            self._db().revoke(self._mount, serial)
        try:
            revoked_file.rename(revoked_file.with_name(revoked_file.name + ".imported"))
        except FileNotFoundError:
            pass  # another process of this deployment (a worker) took it at the same moment: revokes are idempotent
        return len(serials)

    def _db(self) -> SshRevocations:
        if self._revocations is None:
            raise CredentialError("the ssh kind needs the bot's database (its certificates and revocations live there)")
        return self._revocations
