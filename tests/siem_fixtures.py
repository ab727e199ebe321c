"""Collectors for the audit stream tests: Debian's rsyslog (TCP, TLS with its gtls driver, or RELP with
rsyslog-relp's imrelp) writing each message's MSG to a file, and a small HTTPS webhook receiver that checks the HMAC signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devkit.children import die_with_parent
from devkit.harness import free_port

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 / localhost (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class Rsyslog:
    """rsyslogd in the foreground with imtcp (or imrelp) on a free port; each message's MSG is appended to `out`."""

    def __init__(self, folder: Path, tls: bool = False, relp: bool = False):
        self.folder, self.tls, self.relp, self.port = folder, tls, relp, free_port()
        self.out = folder / "received.log"
        self.conf = folder / "rsyslog.conf"
        work = folder / "work"
        work.mkdir(exist_ok=True)
        driver = ""
        if tls:
            self.cert, self.key = self_signed(folder)
            driver = (
                f'global(DefaultNetstreamDriverCAFile="{self.cert}" DefaultNetstreamDriverCertFile="{self.cert}" '
                f'DefaultNetstreamDriverKeyFile="{self.key}")\n'
            )
        if relp:
            tcp = 'module(load="imrelp")'
            assert not tls, "librelp's TLS wants a client certificate: not supported by the RELP sink"
            listen = f'input(type="imrelp" address="127.0.0.1" port="{self.port}" ruleset="jit")\n'
            driver = ""
        else:
            tcp = (
                'module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")'
                if tls
                else 'module(load="imtcp")'
            )
            listen = f'input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="jit")\n'
        self.conf.write_text(
            f'global(workDirectory="{work}" maxMessageSize="64k")\n{driver}{tcp}\n'
            'template(name="msg" type="string" string="%msg%\\n")\n'
            f"{listen}"
            'ruleset(name="jit") {\n'
            f'  action(type="omfile" file="{self.out}" template="msg" flushOnTXEnd="on" asyncWriting="off")\n'
            "}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "relp" if self.relp else ("tls" if self.tls else "tcp")
        return f"{scheme}://127.0.0.1:{self.port}"

    def freeze(self) -> None:
        """SIGSTOP: the host hangs; its kernel still takes bytes into the socket's buffer, nobody reads them."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL (after a freeze, too): whatever sat unread in its socket buffers is gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=15)
        self.process = None

    def start(self, timeout: float = 30) -> Rsyslog:
        log = (self.folder / "rsyslogd.log").open("ab")
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-iNONE", "-f", str(self.conf)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "rsyslogd.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.process.kill()  # never left running behind a failed start
        self.process.wait(timeout=15)
        raise AssertionError("rsyslogd did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen one cannot act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def lines(self) -> list[str]:
        """The complete lines: omfile writes its buffer when full too, so the file may end in the middle of one."""
        text = self.out.read_bytes() if self.out.exists() else b""
        return text[: text.rfind(b"\n") + 1].decode("utf-8").splitlines()


class WebhookReceiver:
    """An HTTPS server that takes POSTed JSONL batches whose HMAC verifies, and can be switched to refuse (503)."""

    def __init__(self, folder: Path, secret: str):
        self.secret, self.batches, self.refusing, self.bad_signatures = secret.encode(), [], False, 0
        self.cert, key = self_signed(folder)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                wanted = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(wanted, self.headers.get("X-Jitbot-Signature", "")):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.refusing:
                    self.send_response(503)
                else:
                    receiver.batches.append(body.decode("utf-8"))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}/jitbot"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def lines(self) -> list[str]:
        return [line for batch in self.batches for line in batch.splitlines()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def first_per_seq(lines: list[str]) -> list[str]:
    """What a SIEM keeps: each seq once (the first copy), duplicates from a resend dropped."""
    seen: set[int] = set()
    kept = []
    for line in lines:
        seq = json.loads(line)["seq"]
        if seq not in seen:
            seen.add(seq)
            kept.append(line)
    return kept
