# staging-read: read staging secrets (KV v2 mounted at secret/), nothing else. Auto-approved for developers,
# so it must stay read-only: no writes, no deletes, no database administration (that is db-admin-staging).

# Read the current and past versions of staging secrets.
path "secret/data/staging/*" {
  capabilities = ["read"]
}

# Browse which staging secrets exist and read their version metadata (no secret values here).
path "secret/metadata/staging/*" {
  capabilities = ["read", "list"]
}
