"""Credential kinds beyond plain Vault tokens: database users, SSH certificates, temporary Vault identity."""
