"""Fast tests with nothing running: no Slack, no Vault, no database server."""
