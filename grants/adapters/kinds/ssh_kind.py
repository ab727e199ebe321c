"""The `ssh` kind behind the seam: certificates for a registered public key; early revoke by the served KRL."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac

from grants.adapters.kinds.ssh_ca import DEFAULT_MOUNT, ca_public_key, sign_certificate, write_ssh_role
from grants.adapters.kinds.ssh_krl import write_krl
from grants.adapters.vault_client import vault_now
from grants.catalog import Catalog, Scope, SshScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    IssuedCredential,
    IssueOrder,
    Orphan,
)
from grants.ssh_keys import SshKeyError, parse_public_key

KIND = "ssh"
# A certificate's end is whole seconds and the clock read is too: this much past the approved end is rounding.
_ROUNDING = timedelta(seconds=2)


class SshKind:
    """Signs with one SSH CA mount; the KRL at `krl_path` lists early-revoked serials (kept `retention`, at least the
    longest ssh scope's total, since a certificate is dead by itself after that)."""

    kind = KIND

    def __init__(self, client: hvac.Client, krl_path: Path, mount: str = DEFAULT_MOUNT, retention: timedelta = timedelta(days=1)):
        self._client, self._krl, self._mount, self._retention = client, krl_path, mount, retention
        self._revoked_file = krl_path.with_suffix(".revoked.json")  # serial -> revoked at; the KRL is built from it

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
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
            key = parse_public_key(order.public_key)
        except SshKeyError as error:
            raise CredentialError(str(error)) from None
        certificate = sign_certificate(
            self._client, scope.ssh_role, key.openssh, list(scope.principals), order.ttl, order.request_id, self._mount
        )
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
            facts={"serial": certificate.serial, "key_fingerprint": key.fingerprint, "principals": list(certificate.principals)},
        )

    def revoke(self, handle: CredentialHandle, request_id: str) -> None:
        """Vault cannot revoke a certificate: add its serial to the KRL hosts fetch (`RevokedKeys`)."""
        try:
            serial = int(handle.id)
        except ValueError:
            raise CredentialError(f"`{handle.id}` is not a certificate serial") from None
        revoked = self._load()
        revoked.setdefault(str(serial), datetime.now(UTC).isoformat())
        self._publish(revoked)

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
        # A certificate lives until its validity (the core knows the grant's end) unless its serial is in the KRL.
        return CredentialStatus.GONE if handle.id in self._load() else CredentialStatus.ALIVE

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return []  # a certificate ends by itself at its validity

    def sync(self, catalog: Catalog) -> list[str]:
        lines = []
        for name, scope in sorted(catalog.scopes.items()):
            if not isinstance(scope, SshScope):
                continue
            if scope.ssh_mount != self._mount:
                lines.append(f"warning: scope {name} uses SSH mount {scope.ssh_mount}; this bot signs with {self._mount} only")
                continue
            try:
                lines.append(write_ssh_role(self._client, scope.ssh_role, list(scope.principals), scope.max_total, self._mount))
            except CredentialError as error:
                if "permission denied" in str(error):
                    raise  # a token that may not write roles (the bot's own): not a missing mount
                # The operator owns the SSH CA mount: without it there is nothing to write yet; say so and go on.
                lines.append(f"warning: scope {name}: {error}; enable the `{self._mount}` SSH mount with its CA, then sync again")
                return lines
        if lines and not self._krl.exists():
            self._publish(self._load())  # hosts refuse every key while RevokedKeys is missing: serve an empty list
            lines.append(f"ssh KRL {self._krl}: created (empty)")
        return lines

    def krl_bytes(self) -> bytes:
        """The current KRL, for `GET /ssh/revoked.krl`; built (empty) on first use."""
        if not self._krl.exists():
            self._publish(self._load())
        return self._krl.read_bytes()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._revoked_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CredentialError(f"the SSH revocation list {self._revoked_file} is unreadable: {exc}") from None
        return {str(k): str(v) for k, v in data.items()}

    def _publish(self, revoked: dict[str, str]) -> None:
        cutoff = datetime.now(UTC) - self._retention
        kept = {serial: at for serial, at in revoked.items() if datetime.fromisoformat(at) > cutoff}
        write_krl(self._krl, ca_public_key(self._client, self._mount), serials=[int(s) for s in kept])
        self._revoked_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self._revoked_file.parent, delete=False, encoding="utf-8") as out:
            json.dump(kept, out, sort_keys=True)
        os.replace(out.name, self._revoked_file)  # atomic, as the KRL itself
