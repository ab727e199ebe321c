# jitbot-sweeper: `jitbot vault sweep`, run from cron independently of the bot. It deletes `jit-*` identity groups
# past their `expires_at` or older than the catalog's longest total; it can read and delete those groups, nothing
# else (it cannot create one or change its members or policies).
path "identity/group/name" {
  capabilities = ["list"]
}

path "identity/group/name/jit-*" {
  capabilities = ["read", "delete"]
}
