# db-admin-staging: administer the staging database connection and roles in the database secrets engine.

# Configure the staging connections (host, admin user); production connections are named prod-* and stay out.
path "database/config/staging-*" {
  capabilities = ["create", "read", "update"]
}

# Define and change the staging roles that generate database users.
path "database/roles/staging-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Generate a short-lived staging database user to check a role works.
path "database/creds/staging-*" {
  capabilities = ["read"]
}

# Rotate the staging admin password after a change, so nobody keeps a copy of it.
path "database/rotate-root/staging-*" {
  capabilities = ["update"]
}

# Staging database secrets kept in KV (connection strings, fixtures' passwords).
path "secret/data/staging/db/*" {
  capabilities = ["create", "read", "update", "patch"]
}
