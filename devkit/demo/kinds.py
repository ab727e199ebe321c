"""The demo's credential kinds beyond Vault tokens: a database login whose open session dies at revoke, an SSH
certificate that stops logging in after revoke and the KRL, and a raised Vault identity. A step whose part is missing
on this machine (PostgreSQL on 127.0.0.1:5432, OpenSSH) says so plainly and is skipped."""

from __future__ import annotations

import getpass
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hvac
import psycopg
from hvac.exceptions import InvalidRequest

from devkit.children import die_with_parent
from devkit.demo.tools import DemoError
from devkit.standin import message_text
from grants.adapters.kinds.database import sync_database
from grants.adapters.kinds.ssh_ca import DEFAULT_MOUNT, ca_public_key, write_ssh_role
from grants.adapters.kinds.ssh_krl import write_krl
from grants.adapters.vault_client import vault_client
from grants.catalog import load_catalog
from grants.catalog_kinds import DatabaseScope

if TYPE_CHECKING:
    from devkit.demo.steps import Stage

DANA, CLEO, EVE, BEN = "U0DEV0001", "U0APPR003", "U0APPR005", "U0APPR002"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_ROLE = "jit-orders-read"
# The role definition docs/kinds.md gives the database operator: revocation ends sessions before dropping the role.
CREATION = [
    """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';""",
    'GRANT SELECT ON orders TO "{{name}}";',
]
REVOCATION = [
    """ALTER ROLE "{{name}}" NOLOGIN;""",
    """REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";""",
    """SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '{{name}}';""",
    """DROP ROLE IF EXISTS "{{name}}";""",
]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# The certificate carries principal web-admin; the throwaway sshd lets that principal into the one account a demo
# can log in to (the one running it, often root), so the host says which principal let her in, not just the account.
SSH_COMMAND = "echo logged in with principal web-admin, as local user $(whoami) on this throwaway sshd"
CERTIFICATE = re.compile(r"(ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/=]+)")


def play_kinds(stage: Stage) -> None:
    database_session_dies_at_revoke(stage)
    ssh_login_stops_after_revoke(stage)
    identity_raised_for_a_while(stage)


def operator(stage: Stage) -> hvac.Client:
    return vault_client(stage.bao.addr, stage.operator_token)


# --- database ------------------------------------------------------------------------------------------------


def postgres_unavailable(url: str = PG_ADMIN) -> str | None:
    """Why this machine cannot run the database step, or None when PostgreSQL answers as `postgres` without a password."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"no PostgreSQL accepts `postgres` without a password on 127.0.0.1:5432 ({first})"


def database_session_dies_at_revoke(stage: Stage) -> None:
    n = stage.narrator
    n.step("Dana gets a PostgreSQL login for orders-db-read; her open session dies when she revokes")
    why = postgres_unavailable()
    if why:
        n.note(f"skipped: {why}; start one there to see this step")
        return
    name = f"jitbot_demo_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _database_story(stage, name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_story(stage: Stage, name: str) -> None:
    n, root = stage.narrator, operator(stage)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as db:
        db.execute("CREATE TABLE orders (id int, status text)")
        db.execute("INSERT INTO orders SELECT i, 'stuck' FROM generate_series(1, 42) AS i")
    try:
        root.sys.enable_secrets_engine("database", path="database")
    except InvalidRequest:
        pass
    root.write_data(
        "database/config/demo-pg",
        data={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{name}?sslmode=disable",
            "username": "postgres",
            "password": "unused-with-trust-auth",
            "allowed_roles": "jit-*",
            # The login's name carries the request ID: PostgreSQL's own logs name the grant.
            "username_template": '{{printf "jit_%s_%s" (.DisplayName | replace "token-" "" | lowercase) (random 6 | lowercase) | truncate 63}}',
        },
    )
    root.write_data(
        f"database/roles/{DB_ROLE}",
        data={"db_name": "demo-pg", "creation_statements": CREATION, "revocation_statements": REVOCATION,
              "default_ttl": "2h", "max_ttl": "2h"},
    )  # fmt: skip
    catalog = load_catalog(stage.settings.jitbot_catalog)
    lines = sync_database(root, {name: s for name, s in catalog.scopes.items() if isinstance(s, DatabaseScope)})
    n.shell("The database operator", f"(database engine on PostgreSQL db {name}, role {DB_ROLE}) jitbot vault sync", lines)

    request_id = _request_id(stage.slash(DANA, "orders-db-read 15m INC-4500 count stuck orders"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()  # the approvers' message is shown before anyone clicks it
    stage.click(BEN, "Approve", request_id)
    delivered = stage.dm_about(DANA, request_id, "unwrap")
    stage.settle()
    wrapping = _wrapping(message_text(delivered))
    n.hide(wrapping, keep=6)
    unwrapped = stage.bao.run("unwrap", wrapping)
    if not unwrapped.ok:
        raise DemoError(f"`bao unwrap` of the database login failed: {unwrapped.error}")
    user, password = unwrapped.data["data"]["username"], unwrapped.data["data"]["password"]
    n.hide(password)
    n.shell("Dana", f"bao unwrap {wrapping}", [f"username {user}", "password (not shown)"], "no token")
    session = psycopg.connect(f"postgresql://127.0.0.1:5432/{name}", user=user, password=password)
    session.execute("LOCK TABLE orders IN ACCESS SHARE MODE")  # held by the open transaction
    count = session.execute("SELECT count(*) FROM orders WHERE status = 'stuck'").fetchone()
    n.shell("Dana", "psql  BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE; SELECT count(*) FROM orders …", [f"{count[0] if count else '?'}  (the session stays open, holding its lock)"], f"psql as {user}")  # fmt: skip
    stage.slash(DANA, f"revoke {request_id}")
    stage.reply(stage.client.last_response_name or "", "Revoked")
    stage.settle()
    ended = _session_end(session, within=15)
    session.close()
    n.shell("Dana", "SELECT 1;", [ended], f"psql as {user}, same session")
    deadline = time.monotonic() + 10
    while _login_exists(user):  # the revocation statements drop the login right after ending its sessions
        if time.monotonic() > deadline:
            raise DemoError(f"the database login {user} still exists 10s after revoke")
        time.sleep(0.1)
    n.note(f"the open session was ended and the login {user} dropped: revoking the reader token ended its lease")


def _login_exists(user: str) -> bool:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None


def _session_end(session: psycopg.Connection, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            session.execute("SELECT 1")
        except psycopg.Error as error:
            return str(error).strip().splitlines()[0]
        time.sleep(0.2)
    raise DemoError(f"the database session was still open {within:.0f}s after revoke")


# --- ssh -----------------------------------------------------------------------------------------------------


def ssh_unavailable() -> str | None:
    """Why this machine cannot run the SSH step (OpenSSH's server, client or ssh-keygen missing), or None."""
    missing = [tool for tool in ("ssh-keygen", "ssh") if shutil.which(tool) is None]
    if not os.access(SSHD, os.X_OK):
        missing.append("sshd")
    if missing:
        return f"this machine has no {', '.join(missing)} (OpenSSH)"
    return None


def ssh_login_stops_after_revoke(stage: Stage) -> None:
    n = stage.narrator
    n.step("Dana gets an SSH certificate for web-ssh; after she revokes it and the host fetches the KRL, it cannot log in")
    why = ssh_unavailable()
    if why:
        n.note(f"skipped: {why}; install openssh-server and openssh-client to see this step")
        return
    root = operator(stage)
    try:
        root.sys.enable_secrets_engine("ssh", path=DEFAULT_MOUNT)
        root.write_data(f"{DEFAULT_MOUNT}/config/ca", data={"generate_signing_key": True, "key_type": "ssh-ed25519"})
    except InvalidRequest:
        pass
    write_ssh_role(root, "jit-web-ssh", ["web-admin"], timedelta(minutes=30))
    folder = stage.work / "ssh"
    folder.mkdir(exist_ok=True)
    try:
        with sshd(folder, ca_public_key(root)) as (port, krl, login):
            n.shell("The operator", f"(SSH CA at {DEFAULT_MOUNT}, role jit-web-ssh) sshd -p {port} …", [
                "TrustedUserCAKeys ca.pub; AuthorizedPrincipalsFile: web-admin; RevokedKeys revoked.krl"])  # fmt: skip
            _ssh_story(stage, folder, port, krl, login)
    except _NoSshd as error:
        n.note(f"skipped: sshd would not start here ({error})")


class _NoSshd(Exception):
    """sshd could not be started on this machine (not root, no privilege separation directory, a config refusal)."""


@contextmanager
def sshd(folder: Path, ca_key: str) -> Iterator[tuple[int, Path, str]]:
    """A throwaway sshd on a free 127.0.0.1 port trusting the CA for principal web-admin: (port, KRL path, login user)."""
    login = getpass.getuser()
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host")], check=True)
    (folder / "ca.pub").write_text(ca_key + "\n", encoding="utf-8")
    (folder / "principals").mkdir(exist_ok=True)
    (folder / "principals" / login).write_text("web-admin\n", encoding="utf-8")
    krl = folder / "revoked.krl"
    write_krl(krl, ca_key)  # sshd refuses every key when RevokedKeys is missing: start with an empty list
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\nPidFile {folder / 'sshd.pid'}\n"
        f"TrustedUserCAKeys {folder / 'ca.pub'}\nAuthorizedPrincipalsFile {folder / 'principals'}/%u\n"
        f"AuthorizedKeysFile none\nRevokedKeys {krl}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
        encoding="utf-8",
    )
    try:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # the privilege separation directory sshd insists on
    except OSError as error:
        raise _NoSshd(f"cannot create /run/sshd: {error.strerror}") from None
    checked = _run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise _NoSshd((checked.stderr.strip().splitlines() or ["its config test failed"])[-1])
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise _NoSshd(f"it exited with status {process.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise _NoSshd("it did not listen within 10s")
            time.sleep(0.05)
        yield port, krl, login
    finally:
        process.kill()  # a throwaway with nothing to flush; SIGTERM would wait forever on a stopped (hung) sshd
        process.wait(timeout=10)


def _run(args: list[str], **options: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run for every tool the demo runs: the child dies with the demo, even when the demo is SIGKILLed
    (an `ssh` waiting on a hung host would otherwise outlive it by its 20 s timeout)."""
    return subprocess.run(args, preexec_fn=die_with_parent(), **options)


def _ssh(folder: Path, port: int, login: str) -> tuple[bool, str]:
    options = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
               "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={os.devnull}", "-o", "ConnectTimeout=5",
               "-o", "LogLevel=ERROR", "-i", str(folder / "dana"), "-o", f"CertificateFile={folder / 'dana-cert.pub'}"]  # fmt: skip
    done = _run(
        ["ssh", *options, "-p", str(port), f"{login}@127.0.0.1", SSH_COMMAND],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    said = (done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}").splitlines()[-1]
    return done.returncode == 0, said


def _ssh_story(stage: Stage, folder: Path, port: int, krl: Path, login: str) -> None:
    n = stage.narrator
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana", "-f", str(folder / "dana")], check=True)
    stage.ephemeral_text(stage.slash(DANA, f"ssh-key {(folder / 'dana.pub').read_text().strip()}"), "SHA256:")
    request_id = _request_id(stage.slash(DANA, "web-ssh 10m INC-4501 restart nginx"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()  # the approvers' message is shown before anyone clicks it
    stage.click(EVE, "Approve", request_id)
    delivered = message_text(stage.dm_about(DANA, request_id, "ssh-ed25519-cert-v01@openssh.com"))
    stage.settle()
    certificate = CERTIFICATE.search(delivered)
    if certificate is None:
        raise DemoError("the SSH certificate DM holds no certificate")
    (folder / "dana-cert.pub").write_text(certificate.group(1) + "\n", encoding="utf-8")
    command = f"ssh -i dana -o CertificateFile=dana-cert.pub -p {port} {login}@127.0.0.1 '{SSH_COMMAND}'"
    ok, said = _ssh(folder, port, login)
    n.shell("Dana", command, [said])
    if not ok:
        raise DemoError(f"the SSH certificate did not log in: {said}")
    stage.slash(DANA, f"revoke {request_id}")
    stage.reply(stage.client.last_response_name or "", "Revoked")
    stage.settle()
    with urllib.request.urlopen(f"{stage.bot.url}/ssh/revoked.krl", timeout=10) as answer:  # noqa: S310  (our bot, http)
        krl.write_bytes(answer.read())
    n.shell("The host's cron job", f"curl {stage.bot.url}/ssh/revoked.krl -o revoked.krl", [f"{krl.stat().st_size} bytes"])
    ok, said = _ssh(folder, port, login)
    n.shell("Dana", command, [said])
    if ok:
        raise DemoError("the revoked SSH certificate still logged in after the host fetched the KRL")
    n.note("refused: the certificate's serial is in the KRL; sessions already open would survive (OpenSSH cannot cut them)")


# --- vault_identity ------------------------------------------------------------------------------------------


def identity_raised_for_a_while(stage: Stage) -> None:
    n, bao, root = stage.narrator, stage.bao, operator(stage)
    n.step("Dana logs in to Vault as herself; payments-identity raises her own token until she revokes")
    assert stage.bot.runtime is not None
    mount = stage.bot.runtime.catalog.settings.identity_alias_mount
    try:
        root.sys.enable_auth_method("userpass", path=mount)
    except InvalidRequest:
        pass
    password = secrets.token_urlsafe(12)
    n.hide(password)
    root.write_data(f"auth/{mount}/users/{DANA}", data={"password": password, "token_policies": "default"})
    n.shell("The operator", f"bao write auth/{mount}/users/{DANA} password=… token_policies=default", ["Success"])
    token = str(bao.must("write", f"auth/{mount}/login/{DANA}", f"password={password}")["auth"]["client_token"])
    n.hide(token)
    n.shell("Dana", f"bao write auth/{mount}/login/{DANA} password=…", ["her own token (not shown)"], "no token")
    _read(stage, token, expect=False)
    request_id = _request_id(stage.slash(DANA, "payments-identity 10m INC-4502 check a refund"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()  # the approvers' message is shown before anyone clicks it
    stage.click(CLEO, "Approve", request_id)
    stage.dm_about(DANA, request_id, "log in to Vault as usual")
    stage.settle()
    info = bao.must("token lookup", token=token)["data"]
    n.shell("Dana", "bao token lookup", [f"policies           {info.get('policies')}",
                                         f"identity_policies  {info.get('identity_policies')}"], "VAULT_TOKEN=her own token")  # fmt: skip
    _read(stage, token, expect=True)
    n.note("the same token, no new login: the group jit-" + request_id + " gives her entity payments-read")
    stage.slash(DANA, f"revoke {request_id}")
    stage.reply(stage.client.last_response_name or "", "Revoked")
    stage.settle()
    _read(stage, token, expect=False)
    n.note("the group was deleted: her token is back to what she had")


def _read(stage: Stage, token: str, expect: bool) -> None:
    result = stage.bao.run("kv get", "secret/payments/stripe", token=token)
    shown = [f"api_key = {result.data['data']['data'].get('api_key')}"] if result.ok else [result.error]
    stage.narrator.shell("Dana", "bao kv get secret/payments/stripe", shown, "VAULT_TOKEN=her own token")
    if result.ok is not expect:
        raise DemoError(f"her own token {'could not' if expect else 'could'} read secret/payments/stripe")


def _request_id(ack: object) -> str:
    from devkit.demo.steps import _request_id as parse

    return parse(ack)


def _wrapping(text: str) -> str:
    from devkit.demo.steps import _wrapping_token

    return _wrapping_token(text)
