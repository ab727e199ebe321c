"""Settings from the environment and `.env`: the only module that reads them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from grants.credentials import MAX_WRAP_TTL

HINTS = {
    "slack_bot_token": "the Bot User OAuth Token of your Slack app, starting with xoxb-",
    "slack_signing_secret": "the Signing Secret from your Slack app's Basic Information page",
    "slack_app_token": "an app-level token starting with xapp- (only for Socket Mode)",
    "slack_api_url": "the Slack Web API base URL, e.g. https://slack.com/api/",
    "vault_addr": "your Vault or OpenBao address, e.g. https://vault.example.com:8200",
    "vault_token": "a Vault token holding the jitbot-bot policy (or set VAULT_ROLE_ID and VAULT_SECRET_ID)",
    "vault_role_id": "the AppRole role ID (with VAULT_SECRET_ID)",
    "vault_secret_id": "the AppRole secret ID (with VAULT_ROLE_ID)",
    "database_url": "sqlite:///jitbot.db or postgresql+psycopg://user@host:5432/dbname",
    "jitbot_catalog": "the path of the catalog, e.g. vault_policies/catalog.toml",
    "port": "a TCP port number such as 3000",
    "log_level": "one of debug, info, warning, error",
    "slack_team_id": "your workspace's team ID starting with T (or leave it unset: it is learned from auth.test)",
    "metrics_token": "a long random string that Prometheus sends as `Authorization: Bearer <token>`",
    "metrics_port": "a TCP port for /metrics alone, e.g. 9102 (then the main port does not serve it)",
    "jitbot_audit_anchor": "a KV v2 mount and path for the audit anchor, e.g. secret/jitbot/audit-anchor",
    "jitbot_wrap_ttl": "seconds a wrapped credential can be unwrapped, e.g. 300 (at least 10, at most 3600)",
    "jitbot_outbox_lease": "seconds a delivery worker's claim on a message holds unless renewed, e.g. 10 (at least 3)",
    "jitbot_slack_pacing": "true or false (keep true against real Slack)",
    "jitbot_audit_webhook_secret": "a long random string the audit webhook's receiver checks the HMAC signature with",
    "jitbot_ticket_watch": "seconds between looks at the tickets of end_when_closed grants, e.g. 30 (at least 1)",
    "jitbot_oncall_token": "a PagerDuty REST API key (read-only is enough) for [settings.oncall]",
    "jitbot_ssh_krl": "a file this replica also writes the SSH key revocation list to, e.g. /var/lib/jitbot/revoked.krl",
}


class SettingsError(Exception):
    """A missing or malformed setting, named with what a valid value looks like."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    vault_addr: str | None = None
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    database_url: str = "sqlite:///jitbot.db"
    jitbot_catalog: Path = Path("vault_policies/catalog.toml")
    port: int = 3000
    log_level: str = "info"  # the bot's own loggers; libraries that could log bodies stay at warning (bot/logs.py)
    slack_team_id: str | None = None  # the one workspace served; unset: learned from auth.test
    metrics_token: SecretStr | None = None  # when set, /metrics wants it as a bearer token
    metrics_port: int | None = None  # when set, /metrics is served on this port only
    # The KRL served at GET /ssh/revoked.krl is built from the database. Set, this replica also writes a copy there
    # (what older versions served from; the serials listed in its `.revoked.json` are taken into the database once).
    jitbot_ssh_krl: Path | None = None
    # How often the grants whose ticket ends them (`end_when_closed`) have their ticket looked up.
    jitbot_ticket_watch: int = Field(default=30, ge=1, le=3600)
    # PagerDuty's REST API key, for `[settings.oncall]` (who is on call now).
    jitbot_oncall_token: SecretStr | None = None
    # The HMAC key of `[settings.audit_stream] webhook`: the receiver checks each batch came from this bot.
    jitbot_audit_webhook_secret: SecretStr | None = None
    # Where the audit chain's head is anchored outside the database: a KV v2 path the bot may write but not delete.
    jitbot_audit_anchor: str = Field(default="secret/jitbot/audit-anchor", pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+$")
    # How long a credential's wrapping token lives; undelivered after that, the credential is replaced.
    jitbot_wrap_ttl: int = Field(default=300, ge=10, le=int(MAX_WRAP_TTL.total_seconds()))
    # A dead replica's claim on an outbox row expires after this; then another replica delivers it.
    jitbot_outbox_lease: int = Field(default=10, ge=3, le=3600)
    # Pace Web API calls to Slack's published limits. Off only against a stand-in of Slack (the benchmarks).
    jitbot_slack_pacing: bool = True

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"  # slack_sdk joins method names onto it

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @field_validator("vault_addr")
    @classmethod
    def _vault_addr(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must be a SQLite or PostgreSQL URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]  # we ship psycopg 3
        return value

    @field_validator("slack_team_id")
    @classmethod
    def _team_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not (value.startswith(("T", "E")) and value.isalnum() and value.isupper()):
            raise ValueError("must be a team ID such as T0123ABCD")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")  # a short token is guessed
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must start with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must start with xapp-")
        return value

    def tracker_tokens(self, names: Iterable[str]) -> dict[str, SecretStr]:
        """Each tracker's token, from JITBOT_TRACKER_<NAME>_TOKEN (the catalog names the trackers, never their tokens)."""
        dotenv = {k.upper(): v for k, v in dotenv_values(".env").items() if v}
        tokens = {}
        for name in names:
            variable = f"JITBOT_TRACKER_{name.upper()}_TOKEN"
            value = os.environ.get(variable) or dotenv.get(variable)
            if value:
                tokens[name] = SecretStr(value)
        return tokens

    def require_slack(self) -> None:
        _require(self, "slack_bot_token", "slack_signing_secret")

    def require_vault(self) -> None:
        _require(self, "vault_addr")
        if self.vault_token is None and not (self.vault_role_id and self.vault_secret_id):
            raise SettingsError(f"VAULT_TOKEN is missing: set it to {HINTS['vault_token']}.")


def _require(settings: Settings, *names: str) -> None:
    for name in names:
        if getattr(settings, name) is None:
            raise SettingsError(f"{name.upper()} is missing: set it to {HINTS[name]}.")


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and `.env`); one clear message for the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "setting"
        # Never echo the value: it may be a secret.
        raise SettingsError(
            f"{name.upper()} is malformed ({error['msg'].removeprefix('Value error, ')}): set it to {HINTS.get(name, 'a valid value')}."
        ) from None
