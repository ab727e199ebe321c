"""Adapters: the only code that talks to SQL databases, Vault and APScheduler."""
