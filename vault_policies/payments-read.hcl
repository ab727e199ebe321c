# payments-read: read production payment secrets (KV v2 mounted at secret/), nothing else.

# Read the current and past versions of payment secrets.
path "secret/data/payments/*" {
  capabilities = ["read"]
}

# Browse which payment secrets exist and read their version metadata (no secret values here).
path "secret/metadata/payments/*" {
  capabilities = ["read", "list"]
}
