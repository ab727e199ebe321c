"""Shared benchmark machinery: figures with their baseline and verdict, the lab of real parts, small timing helpers."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hvac

from devkit.databases import fresh_database
from devkit.harness import LocalBot
from devkit.openbao import OpenBaoDevServer
from devkit.openbao_server import OpenBaoServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.seal_key import ensure_seal_key, open_sealer
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import Catalog, load_catalog
from grants.seals import Sealer

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-bench-0000-jitbot"
SIGNING_SECRET = "bench-signing-secret-5d41402abc4b2a76"
APPROVER = "U0APPR001"  # an approver of payments-read in the shipped catalog
SCOPE = "payments-read"
PG_ADMIN = os.environ.get("JITBOT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through $http_proxy


@dataclass
class Figure:
    """One measured figure, its baseline from the same run, and the target it is held to (if any)."""

    bench: str
    metric: str
    unit: str
    value: float
    baseline: float
    baseline_label: str
    max_ratio: float | None = None  # value / baseline must be <= this
    at_most: float | None = None  # value must be <= this (in `unit`)
    below: float | None = None  # value must be < this (in `unit`)
    note: str = ""
    min_ratio: float | None = None  # value / baseline must be >= this (throughput)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline > 0 else math.inf

    @property
    def target(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"<={self.max_ratio:g}x")
        if self.min_ratio is not None:
            parts.append(f">={self.min_ratio:g}x")
        if self.at_most is not None:
            parts.append(f"<={self.at_most:g} {self.unit}")
        if self.below is not None:
            parts.append(f"<{self.below:g} {self.unit}")
        return " & ".join(parts) or "-"

    @property
    def verdict(self) -> str:
        if self.max_ratio is None and self.min_ratio is None and self.at_most is None and self.below is None:
            return "-"
        ok = (
            (self.max_ratio is None or self.ratio <= self.max_ratio)
            and (self.min_ratio is None or self.ratio >= self.min_ratio)
            and ((self.at_most is None or self.value <= self.at_most) and (self.below is None or self.value < self.below))
        )
        return "PASS" if ok else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "target": self.target, "verdict": self.verdict}


def p50(values: list[float]) -> float:
    return float(statistics.median(values))


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[98])


def say(text: str) -> None:
    """Progress goes to stderr; the table goes to stdout."""
    print(f"  · {text}", file=sys.stderr, flush=True)


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `check` until it is truthy; TimeoutError naming `what` after `timeout` seconds. Never hangs."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def http_status(url: str, timeout: float = 5.0) -> int:
    try:
        with DIRECT.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Lab:
    """The real parts the benchmarks share: one OpenBao dev server (synced), the catalog, fresh databases."""

    workdir: Path
    quick: bool
    pg: bool
    persistent_vault: bool = False  # a non-dev OpenBao on raft storage in the work dir, which survives restart()
    _vault: OpenBaoDevServer | OpenBaoServer | None = None
    _bot_token: str | None = None
    _children: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def catalog_path(self) -> Path:
        target = self.workdir / "policies"
        if not target.exists():
            shutil.copytree(ROOT / "vault_policies", target)
        return target / "catalog.toml"

    @property
    def catalog(self) -> Catalog:
        return load_catalog(self.catalog_path)

    @property
    def vault(self) -> OpenBaoDevServer | OpenBaoServer:
        with self._lock:
            if self._vault is None:
                # The dev server dies with the *thread* that started it (PR_SET_PDEATHSIG): start it on the main
                # thread, never on a pool worker that is gone a moment later.
                assert threading.current_thread() is threading.main_thread(), "start the lab's Vault on the main thread"
                server: OpenBaoDevServer | OpenBaoServer
                if self.persistent_vault:
                    server = OpenBaoServer(self.workdir / "openbao").start()
                    root = vault_client(server.addr, server.root_token)
                    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})  # dev mode has it
                else:
                    server = OpenBaoDevServer().start()
                root = vault_client(server.addr, server.root_token)
                sync(root, self.catalog_path.parent, load_catalog(self.catalog_path), credential_kinds(VaultSession(root)))
                ensure_seal_key(root, "secret")  # as `jitbot vault sync` does: the bot seals what it issues
                created = root.auth.token.create(
                    policies=["jitbot-bot"], no_default_policy=True, ttl="4h", display_name="bench-bot"
                )
                self._bot_token = str(created["auth"]["client_token"])
                self._vault = server
            return self._vault

    @property
    def bot_token(self) -> str:
        _ = self.vault
        assert self._bot_token is not None
        return self._bot_token

    def sealer(self) -> Sealer | None:
        """The credential sealer with the key `vault sync` made in the lab's Vault (what the bot reads at start-up)."""
        return open_sealer(vault_client(self.vault.addr, self.bot_token), "secret")

    def bot_vault(self) -> hvac.Client:
        """A fresh client holding the bot's own token (jitbot-bot policy): one per thread."""
        return vault_client(self.vault.addr, self.bot_token)

    @contextmanager
    def database(self, tag: str) -> Iterator[str]:
        """A fresh, empty database: a SQLite file in the work dir, or (with --pg) a new PostgreSQL database."""
        kind = "postgresql" if self.pg else "sqlite"
        with fresh_database(kind, self.workdir, f"jitbot_bench_{tag}_{uuid.uuid4().hex[:6]}", PG_ADMIN) as url:
            yield url

    def bot(self, database_url: str, slack_url: str) -> LocalBot:
        """The real runtime behind waitress (not started), on this lab's Vault and catalog."""
        return LocalBot(
            # The stand-in is not Slack: measure the bot's own cost, not Slack's one post per second per channel
            # (seeding 200 requests for one group of approvers would otherwise take minutes of pacing).
            jitbot_slack_pacing=False,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack_url,
            vault_addr=self.vault.addr,
            vault_token=self.bot_token,
            database_url=database_url,
            jitbot_catalog=self.catalog_path,
        )

    def adopt(self, child: Any) -> Any:
        """Remember a child process (anything with .kill()) so an emergency stop can end it."""
        self._children.append(child)
        return child

    def emergency_stop(self) -> None:
        for child in self._children:
            try:
                child.kill()
            except Exception:  # noqa: S110 - best effort on the way out
                pass
        if self._vault is not None:
            self._vault.close()

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()
            self._vault = None
