# jitbot-bot: the bot's own token. It issues grants through each scope's token role (`jitbot-<scope>`),
# revokes them by accessor and keeps itself alive; nothing else. Policies and the role are written by an operator running
# `jitbot vault sync` with an admin token: the bot can neither write policies nor change its role.
# Give the bot this policy alone (`-no-default-policy` is fine: everything it needs is listed here).

# Issue a grant, only through a scope's own role. Each role pins what that scope's grants may be (its policies
# exactly, an orphan service token, not renewable, never past that scope's longest total time), so a stolen bot
# token cannot combine scopes or outlast a scope's cap. The parameter list below additionally refuses `id`,
# `period`, `type` and `entity_alias`, and any `renewable` but false.
path "auth/token/create/jitbot-*" {
  capabilities = ["create", "update"]
  # Response wrapping is required: Vault refuses an unwrapped create, so even this token never sees a grant's
  # token, and the wrapping token (single use) is all a thief of a DM could take.
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = "1h"
  allowed_parameters = {
    "policies"          = []
    "no_default_policy" = []
    "ttl"               = []
    "explicit_max_ttl"  = []
    "display_name"      = []
    "meta"              = []
    "no_parent"         = []
    "num_uses"          = []
    "renewable"         = [false]
  }
}

# Revoke a grant early or on expiry. The bot never holds a grant's token, only its accessor.
# (Vault cannot limit this path to the role's tokens: guard the bot's token accordingly.)
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}

# See whether a grant still exists and what it carries (start-up reconciliation), again by accessor.
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# Health check and self-renewal: read its own TTL, and renew itself before it runs out.
# (`sys/health` needs no token, so nothing is granted for it.)
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Start-up: which of the paths it needs this token may use (it reveals only the token's own rights), so a wrong
# token stops `jitbot serve` with one line instead of failing every second.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# --- Kind `ssh`: sign a person's public key with a scope's signer role (`jit-*`, written by `jitbot vault sync`).
# The role pins principals, max TTL and extensions. A stolen bot token can sign a thief's key for any `jit-*`
# role's principals, up to its max TTL: use a dedicated CA for jitbot and keep SSH scopes short.
path "ssh-client-signer/sign/jit-*" {
  capabilities = ["update"]
  allowed_parameters = {
    "public_key"       = []
    "valid_principals" = []
    "ttl"              = []
    "key_id"           = []
    "cert_type"        = ["user"]
  }
}

# The CA's public key, to build the KRL of early-revoked certificates.
path "ssh-client-signer/config/ca" {
  capabilities = ["read"]
}

# --- Kind `database`: a grant's reader token comes from its scope's own token role `jitbot-<scope>` through the
# `auth/token/create/jitbot-*` rule above, so creating it needs response wrapping like every other create (there is
# deliberately no more specific path here: a more specific path would override that rule and its wrapping).
# The bot unwraps the reader token itself, since it must use it once: against a thief with this token, that wrapping
# is no barrier. What bounds a reader is its role: only that scope's `jitbot-dbread-<role>` policy (which reads one
# `database/creds/<role>`, and only response-wrapped), orphan, not renewable, at most that scope's longest total.
# A stolen bot token can still obtain and unwrap credentials for any jitbot database role, each within its scope's
# cap: keep those roles' privileges narrow and their scopes' max durations short. On an `approval = "vault"` scope
# `jitbot vault sync` appends that scope's exact create path below, held by its control group (then no wrapping rule:
# the control group's answer is its own wrapping), so this token gets only a pending request there.
# A revoke is done only once the login's lease is gone (Vault revokes it after the reader token, and not while it
# cannot reach the database): list a role's leases around the read to learn the grant's, and look it up after.
# Lease IDs and times only, no secret. (A scope on another mount needs the same list path for that mount.)
path "sys/leases/lookup/database/creds/*" {
  capabilities = ["list", "sudo"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

# --- Kind `vault_identity`: one internal group `jit-<request id>` per grant, holding the requester's (or a listed
# service's) entity. `policies` is pinned to what identity scopes may grant: one entry per vault_identity scope, its
# policies comma-joined in catalog order. Keep it equal to the catalog, or a stolen bot token could attach any
# policy to a group of its own.
path "identity/group/name/jit-*" {
  capabilities = ["create", "update", "read", "delete"]
  allowed_parameters = {
    "type"              = ["internal"]
    "policies"          = ["payments-read"]
    "member_entity_ids" = []
    "metadata"          = []
  }
}

# List group names so reconcile can delete `jit-*` groups no active grant holds (a group has no TTL of its own).
path "identity/group/name" {
  capabilities = ["list"]
}

# Find a requester's entity by its alias (named by the Slack user ID) and a service's entity by name.
path "identity/lookup/entity" {
  capabilities = ["update"]
}

path "identity/entity/name/*" {
  capabilities = ["read"]
}

# The alias mount's accessor (entity lookups name mounts by accessor).
path "sys/auth" {
  capabilities = ["read"]
}

# Anchor the audit chain outside the database: write new versions of one KV v2 secret, read it back. No delete,
# no destroy, no metadata: a database insider cannot rewrite the trail without `jitbot audit verify` noticing,
# and the bot itself cannot erase an anchor's history. (JITBOT_AUDIT_ANCHOR moves it; move this path too.)
path "secret/data/jitbot/audit-anchor" {
  capabilities = ["create", "update", "read"]
}

# The credential seal key (made by `jitbot vault sync`, read once at start-up): revocation proves a credential is the
# request's by its seal, with no lookup. Read only: the bot cannot replace the key. (Moves with JITBOT_AUDIT_ANCHOR's mount.)
path "secret/data/jitbot/seal-key" {
  capabilities = ["read"]
}

# --- Kind `pki`: sign a person's CSR with a scope's role (`jitbot-*`, written by `jitbot vault sync`). The role pins
# the domain, client auth only, key types and max TTL; the subject's serialNumber must be a request ID (`JIT-*`). A
# stolen bot token can sign a thief's CSR for any name under a pki scope's domain, up to its max TTL: use a
# dedicated issuing CA for jitbot that only the relying parties of these scopes trust, and keep the scopes short.
# (A scope on another mount needs the same two paths for that mount; `jitbot check` says so.)
path "pki/sign/jitbot-*" {
  capabilities = ["update"]
  allowed_parameters = {
    "csr"                  = []
    "common_name"          = []
    "ttl"                  = []
    "serial_number"        = []
    "format"               = ["pem"]
    "exclude_cn_from_sans" = [false]
  }
}

# Revoke a grant's certificate early or at expiry: OpenBao rebuilds the CRL and answers OCSP at once. (Vault cannot
# limit this to the role's certificates: a stolen token could revoke other certificates of this mount. The bot reads
# `pki/cert/<serial>`, which needs no token, to check a certificate is its grant's before revoking it.)
path "pki/revoke" {
  capabilities = ["update"]
}

# --- approval = "vault": `jitbot vault sync` appends one stanza per such scope below, with the control group that makes
# this token's create come back only as a pending request. The pending requests' wrapping tokens wait in KV (never in
# the database); the bot reads a request's state and, once Vault says its approvers authorized it, unwraps it once and
# deletes it. It cannot authorize (approvers do, with their own minute-long tokens) nor change the approver groups.
path "secret/data/jitbot/control-groups/*" {
  capabilities = ["create", "read"]
}

path "secret/metadata/jitbot/control-groups/*" {
  capabilities = ["delete"]
}

path "sys/control-group/request" {
  capabilities = ["update"]
}

path "identity/group/name/jitbot-approvers-*" {
  capabilities = ["read"]
}

# Re-wrap a released vault-enforced credential for the requester's DM (OpenBao answers a control group's unwrap unwrapped).
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
