# payments-write: change production payment secrets; granted together with payments-read.

# Write new versions of payment secrets (create a new key, update or patch an existing one).
path "secret/data/payments/*" {
  capabilities = ["create", "update", "patch"]
}

# Soft-delete and restore versions, so a bad write can be rolled back; destroying history stays out of scope.
path "secret/delete/payments/*" {
  capabilities = ["update"]
}

path "secret/undelete/payments/*" {
  capabilities = ["update"]
}
