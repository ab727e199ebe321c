"""Debian's Redmine (`redmine`, `redmine-sqlite`; `.ci/run` installs them) on loopback, on a copy of its database."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.harness import free_port

REDMINE = Path("/usr/share/redmine")
# dbconfig-common's database of the `default` instance, migrated and loaded with Redmine's default data at install.
INSTALLED_DB = Path("/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default")
CLOSED = 5  # Redmine's default data: status 5 "Closed" (is_closed), 1 "New"


class Redmine:
    """A real Redmine served by WEBrick on a free port; `api_key` is its admin's (the bot's, in these tests)."""

    def __init__(self, folder: Path):
        if not (REDMINE / "bin" / "rails").is_file() or not INSTALLED_DB.is_file():
            pytest.fail("Debian's Redmine is not installed: run .ci/run (it installs redmine and redmine-sqlite)")
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "redmine.sqlite3"
        shutil.copy(INSTALLED_DB, self.db)
        self.api_key = secrets.token_hex(20)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with sqlite3.connect(self.db) as db:  # the REST API on, and an API key for the admin: what an operator clicks
            db.execute("INSERT INTO settings (name, value, updated_on) VALUES ('rest_api_enabled', '1', ?)", (now,))
            admin = db.execute("SELECT id FROM users WHERE login = 'admin'").fetchone()[0]
            db.execute(
                "INSERT INTO tokens (user_id, action, value, created_on, updated_on) VALUES (?, 'api', ?, ?, ?)",
                (admin, self.api_key, now, now),
            )
            db.execute("UPDATE users SET must_change_passwd = 0 WHERE id = ?", (admin,))
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.headers.update({"X-Redmine-API-Key": self.api_key})

    def start(self, timeout: float = 120) -> Redmine:
        env = {**os.environ, "RAILS_ENV": "production", "DATABASE_URL": f"sqlite3:{self.db}"}
        log = (self.folder / "redmine.log").open("wb")
        self.process = subprocess.Popen(
            ["bin/rails", "server", "-u", "webrick", "-b", "127.0.0.1", "-p", str(self.port), "-P", str(self.folder / "server.pid")],
            cwd=REDMINE, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"Redmine exited: {(self.folder / 'redmine.log').read_text()[-2000:]}")
            try:
                if self.http.get(f"{self.url}/users/current.json", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            self.stop()
            pytest.fail("Redmine did not answer in time")
        self.project = self._post(
            "/projects.json",
            {"project": {"name": "Operations", "identifier": "ops", "is_public": False, "tracker_ids": [1, 2, 3]}},
        )["project"]["id"]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.url + path, json=body, timeout=10)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def user(self, login: str) -> int:
        """A Redmine user, member of the project (so issues can be assigned to them); their user ID."""
        made = self._post("/users.json", {"user": {"login": login, "firstname": login.title(), "lastname": "Test",
                                                   "mail": f"{login}@example.test", "password": secrets.token_hex(8)}})  # fmt: skip
        uid = int(made["user"]["id"])
        self._post(f"/projects/{self.project}/memberships.json", {"membership": {"user_id": uid, "role_ids": [4]}})
        return uid

    def issue(self, subject: str, assigned_to: int | None = None, **dates: str) -> int:
        """A new issue; `start_date` / `due_date` (YYYY-MM-DD) give it a change window."""
        body: dict[str, Any] = {"project_id": self.project, "subject": subject, "tracker_id": 1, **dates}
        if assigned_to is not None:
            body["assigned_to_id"] = assigned_to
        return int(self._post("/issues.json", {"issue": body})["issue"]["id"])

    def close(self, issue: int) -> None:
        response = self.http.put(f"{self.url}/issues/{issue}.json", json={"issue": {"status_id": CLOSED}}, timeout=10)
        assert response.status_code == 204, response.text

    def notes(self, issue: int) -> list[str]:
        response = self.http.get(f"{self.url}/issues/{issue}.json", params={"include": "journals"}, timeout=10)
        return [j["notes"] for j in response.json()["issue"]["journals"] if j.get("notes")]


@pytest.fixture(scope="session")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redmine]:
    server = Redmine(tmp_path_factory.mktemp("redmine")).start()
    try:
        yield server
    finally:
        server.stop()
