# k8s-prod-read: read the production Kubernetes cluster's secrets; the scope drops Vault's `default` policy too.

# Read the secrets the production workloads are deployed with.
path "secret/data/k8s/prod/*" {
  capabilities = ["read"]
}

# Browse which of them exist (names and versions, no values).
path "secret/metadata/k8s/prod/*" {
  capabilities = ["read", "list"]
}

# A short-lived, read-only Kubernetes service-account token for the production cluster.
path "kubernetes/creds/prod-read-only" {
  capabilities = ["update"]
}
