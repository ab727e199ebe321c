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
