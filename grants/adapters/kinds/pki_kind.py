"""The `pki` kind behind the seam: a client certificate for the requester's own CSR; early revoke by CRL and OCSP."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta
from typing import Any

import hvac

from grants.adapters.kinds import pki_ca
from grants.adapters.kinds.vault_token import Redeemer, stanza_rules
from grants.adapters.vault_client import vault_now
from grants.catalog import Catalog, Scope
from grants.catalog_kinds import PkiScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    ForeignCredential,
    IssuedCredential,
    IssueOrder,
    Orphan,
)
from grants.csr import Csr, CsrError, parse_csr

KIND = "pki"
# A certificate's end is whole seconds and the clock read is too: this much past the approved end is rounding.
_ROUNDING = timedelta(seconds=2)


class PkiKind:
    """Signs with each pki scope's role on its mount; the handle is `<mount>/<serial>` so revoke finds the mount."""

    kind = KIND

    def __init__(self, client: hvac.Client, public_url: str | None = None, gate: Redeemer | None = None):
        self._client = client
        self._public_url = public_url or str(client.url)  # where relying parties fetch the CRL and ask OCSP
        self._gate = gate  # vault-enforced scopes: where Vault's answer to the held signing call is released

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        csr, name = self._checked(order, scope)
        assert isinstance(scope, PkiScope)
        if scope.vault_enforced:
            # Signed when the approvers' own identities authorized the call held at request time, not before.
            if self._gate is None:
                raise CredentialError(f"{order.scope} is enforced by Vault, but this bot has no control groups wired")
            cert = pki_ca.certificate_of(self._gate.release(order.request_id), name, order.request_id)
        else:
            cert = pki_ca.sign(self._client, scope.pki_mount, scope.role(order.scope), csr.pem, name, order.ttl, order.request_id)
        return self._issued(order, scope, cert, name, csr.fingerprint)

    def hold(self, order: IssueOrder, scope: Scope) -> Any:
        """A vault-enforced grant's signing call, made when it is requested: Vault answers it pending (a control group)."""
        csr, name = self._checked(order, scope)
        assert isinstance(scope, PkiScope)
        answer = pki_ca.sign_call(
            self._client, scope.pki_mount, scope.role(order.scope), csr.pem, name, order.ttl, order.request_id
        )
        serial = ((answer or {}).get("data") or {}).get("serial_number")
        if serial:  # signed without anyone's approval: the policy lacks the control group (not synced)
            pki_ca.revoke(self._client, scope.pki_mount, str(serial))
        return answer

    def guarded_path(self, scope_name: str, scope: Scope) -> tuple[str, str] | None:
        """The signing path a control group guards, with the bot policy's parameters for it (an exact path wins over
        the `jitbot-*` glob, so it repeats them)."""
        if not isinstance(scope, PkiScope):
            return None
        free = ("csr", "common_name", "ttl", "serial_number")
        rules = stanza_rules(("update",), free, {"format": '"pem"', "exclude_cn_from_sans": "false"})
        return f"{scope.pki_mount}/sign/{scope.role(scope_name)}", rules

    def _checked(self, order: IssueOrder, scope: Scope) -> tuple[Csr, str]:
        if not isinstance(scope, PkiScope):
            raise CredentialError(f"{order.scope} is not a pki scope")
        if not order.csr:
            raise CredentialError("no CSR is registered for the requester")
        if order.ttl.total_seconds() < 1:
            # Never ask Vault to sign with ttl 0: it would take the role's default, the scope's longest total.
            raise CredentialError(f"{order.request_id}: no time left to grant")
        try:
            csr = parse_csr(order.csr)
        except CsrError as error:
            raise CredentialError(str(error)) from None
        problems = scope.csr_problems(csr, order.requester)
        if problems:  # checked at request time too; the catalog may have changed since
            raise CredentialError(f"the registered CSR cannot be signed for {order.scope}: {', '.join(problems)}")
        return csr, scope.name_for(order.requester)

    def _issued(
        self, order: IssueOrder, scope: PkiScope, cert: pki_ca.SignedCertificate, name: str, fingerprint: str
    ) -> IssuedCredential:
        return IssuedCredential(
            handle=CredentialHandle(KIND, f"{scope.pki_mount}/{cert.serial}"),
            delivery=Delivery(
                summary=f"a client certificate for {name}",
                lines=(
                    f"Serial {cert.serial}; valid from {cert.not_before:%Y-%m-%d %H:%M:%S} "
                    f"until {cert.not_after:%Y-%m-%d %H:%M:%S} UTC; client authentication only.",
                    "The block is your certificate followed by its CA chain: save it as `client.crt` beside the "
                    "`client.key` you made the CSR with (e.g. `curl --cert client.crt --key client.key …`).",
                    "Services that check the CRL or OCSP refuse it the moment it is revoked or the grant ends.",
                ),
                code="\n".join((cert.pem, *cert.chain)),  # public: the private key never passes through the bot
            ),
            valid_until=cert.not_after,
            facts={"serial": cert.serial, "common_name": name, "csr_fingerprint": fingerprint, "mount": scope.pki_mount},
        )

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """Revoke the serial: OpenBao lists it in the CRL and answers OCSP `revoked` at once. Sealed, it is revoked
        straight away; unsealed, or when that fails (tidied away after expiry), the certificate is read first."""
        mount, serial = self._split(handle)
        if proven:
            try:
                pki_ca.revoke(self._client, mount, serial)
                return
            except CredentialError:
                pass  # the read below tells gone (success) from a real failure
        found = pki_ca.read(self._client, mount, serial)
        if found is None:
            return  # never issued or already tidied away after expiry: nothing left to refuse
        certificate, revoked = found
        if certificate.request_id != request_id:
            raise ForeignCredential(
                f"certificate {serial} was signed for {certificate.request_id or 'no grant'}, not {request_id}"
            )
        if not revoked:
            pki_ca.revoke(self._client, mount, serial)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """A certificate's validity is fixed: sign again for the rest (the caller revokes the old one). The rest is
        measured on Vault's clock, which stamps the validity, and the result checked against the approved end."""
        rest = order.until - vault_now(self._client)
        if rest < order.ttl:  # our clock is behind Vault's: Vault's reckoning wins
            order = replace(order, ttl=rest)
        issued = self.issue(order, scope)
        if issued.valid_until is not None and issued.valid_until > order.until + _ROUNDING:
            self.revoke(issued.handle, order.request_id)  # never delivered; relying parties refuse it from now on
            raise CredentialError(
                f"Vault signed {order.request_id}'s certificate until {issued.valid_until:%H:%M:%S}, past the approved "
                f"end {order.until:%H:%M:%S} UTC; not delivered"
            )
        return issued

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        mount, serial = self._split(handle)
        try:
            found = pki_ca.read(self._client, mount, serial)
        except CredentialError:
            return CredentialStatus.UNKNOWN
        if found is None or found[1]:
            return CredentialStatus.GONE
        if found[0].request_id != request_id:
            raise ForeignCredential(f"certificate {serial} was not signed for {request_id}")
        return CredentialStatus.ALIVE

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return []  # a certificate ends by itself at its validity

    def sync(self, catalog: Catalog) -> list[str]:
        lines: list[str] = []
        mounts: set[str] = set()
        for name, scope in sorted(catalog.scopes.items()):
            if not isinstance(scope, PkiScope):
                continue
            try:
                lines.append(pki_ca.write_role(self._client, scope.pki_mount, scope.role(name), scope))
                if scope.pki_mount not in mounts:
                    lines.append(pki_ca.write_urls(self._client, scope.pki_mount, self._public_url))
                    mounts.add(scope.pki_mount)
            except CredentialError as error:
                if "permission denied" in str(error):
                    raise  # a token that may not write roles (the bot's own): not a missing mount
                # The operator owns the PKI mount and its CA: without them there is nothing to write yet; say so.
                lines.append(
                    f"error: scope {name}: {error}; enable the `{scope.pki_mount}` PKI mount with its CA, then sync again"
                )
        return lines

    @staticmethod
    def _split(handle: CredentialHandle) -> tuple[str, str]:
        mount, _, serial = handle.id.rpartition("/")
        if not mount or not serial:
            raise CredentialError(f"`{handle.id}` is not a pki certificate handle (mount/serial)")
        return mount, serial
