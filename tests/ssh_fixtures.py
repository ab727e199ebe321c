"""A real OpenSSH server for tests: sshd as root on a free 127.0.0.1 port trusting OpenBao's SSH CA, and a login probe."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import InvalidRequest

from grants.adapters.kinds.ssh_ca import DEFAULT_MOUNT, ca_public_key
from grants.adapters.kinds.ssh_krl import write_krl

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
LOGIN_USER = "root"  # the fixture runs as root; PermitRootLogin prohibit-password lets certificates in, nothing else


@dataclass
class SshServer:
    """A running sshd: where it listens, who may log in as LOGIN_USER, and the KRL it reads on every login."""

    port: int
    folder: Path
    principals_file: Path
    krl_path: Path
    ca_public_key: str
    log_path: Path

    def allow_principals(self, *principals: str) -> None:
        self.principals_file.write_text("".join(f"{p}\n" for p in principals), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def ssh_ca(vault_root: hvac.Client) -> str:
    """OpenBao's SSH signer mount with a generated CA (what an operator sets up once); the CA public key."""
    try:
        vault_root.sys.enable_secrets_engine("ssh", path=DEFAULT_MOUNT)
        vault_root.write_data(f"{DEFAULT_MOUNT}/config/ca", data={"generate_signing_key": True, "key_type": "ssh-ed25519"})
    except InvalidRequest:
        pass  # already set up by another test module in this session
    return ca_public_key(vault_root)


@pytest.fixture
def sshd(ssh_ca: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    folder = tmp_path_factory.mktemp("sshd")
    host_key = folder / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    (folder / "ca.pub").write_text(ssh_ca + "\n", encoding="utf-8")
    principals_dir = folder / "principals"
    principals_dir.mkdir()
    krl = folder / "revoked.krl"
    write_krl(krl, ssh_ca)  # sshd refuses every key when RevokedKeys is missing: start with an empty list
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder / "sshd.pid"}
TrustedUserCAKeys {folder / "ca.pub"}
AuthorizedPrincipalsFile {principals_dir}/%u
AuthorizedKeysFile none
RevokedKeys {krl}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
""",
        encoding="utf-8",
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory sshd insists on
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    log = folder / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process)
        yield SshServer(port, folder, principals_dir / LOGIN_USER, krl, ssh_ca, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("sshd did not start listening")


def new_key(folder: Path, name: str) -> Path:
    """A fresh ed25519 key pair in `folder`; the private key's path (the public one is beside it, `.pub`)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


def can_log_in(server: SshServer, private_key: Path, certificate: Path | None, user: str = LOGIN_USER) -> bool:
    """Whether `ssh … user@127.0.0.1 true` succeeds with this key (and certificate), never prompting."""
    options = [
        "-F",
        "/dev/null",  # no user or system ssh_config can change the outcome
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={os.devnull}",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
        "-i",
        str(private_key),
    ]
    if certificate is not None:
        options += ["-o", f"CertificateFile={certificate}"]
    result = subprocess.run(
        ["ssh", *options, "-p", str(server.port), f"{user}@127.0.0.1", "true"],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode == 0
