"""Registering SSH public keys: accepted types and sizes, ssh-keygen's fingerprint, private keys refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from grants.ssh_keys import PrivateKeyPasted, SshKeyError, parse_public_key


def _keygen(tmp_path: Path, name: str, *args: str) -> Path:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "someone@laptop", "-f", str(path), *args], check=True)
    return path


def _ssh_keygen_fingerprint(pub: Path) -> str:
    return subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], check=True, capture_output=True, text=True
    ).stdout.split()[1]


@pytest.mark.parametrize(
    ("args", "key_type", "bits"),
    [
        (("-t", "ed25519"), "ssh-ed25519", 256),
        (("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256", 256),
        (("-t", "ecdsa", "-b", "384"), "ecdsa-sha2-nistp384", 384),
        (("-t", "ecdsa", "-b", "521"), "ecdsa-sha2-nistp521", 521),
        (("-t", "rsa", "-b", "3072"), "ssh-rsa", 3072),
    ],
)
def test_accepted_keys_have_ssh_keygens_fingerprint(tmp_path: Path, args: tuple[str, ...], key_type: str, bits: int) -> None:
    private = _keygen(tmp_path, "key", *args)
    pub = private.with_suffix(".pub")
    key = parse_public_key(pub.read_text() + "\n\n")  # trailing blank lines from a paste are fine
    assert key.key_type == key_type
    assert key.bits == bits
    assert key.fingerprint == _ssh_keygen_fingerprint(pub)
    assert key.openssh == " ".join(pub.read_text().split()[:2])  # the comment is dropped


def test_rsa_below_3072_bits_is_refused_with_what_to_do(tmp_path: Path) -> None:
    pub = _keygen(tmp_path, "rsa", "-t", "rsa", "-b", "2048").with_suffix(".pub")
    with pytest.raises(SshKeyError, match="2048 bits; at least 3072") as caught:
        parse_public_key(pub.read_text())
    assert "ssh-keygen -t ed25519" in str(caught.value)


@pytest.mark.parametrize("fmt", ["RFC4716", "PKCS8", "PEM"])
def test_private_keys_in_every_format_are_refused_and_rotation_is_asked(tmp_path: Path, fmt: str) -> None:
    private = _keygen(tmp_path, "key", "-t", "ecdsa", "-m", fmt)
    with pytest.raises(PrivateKeyPasted, match=r"PRIVATE key.*rotate it now"):
        parse_public_key(private.read_text())


def test_an_openssh_private_key_without_its_armour_lines_is_still_refused(tmp_path: Path) -> None:
    private = _keygen(tmp_path, "key", "-t", "ed25519").read_text().splitlines()
    body = "".join(line for line in private if "-----" not in line)
    with pytest.raises(PrivateKeyPasted):
        parse_public_key(body)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "exactly one line"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\nssh-ed25519 AAAA", "exactly one line"),
        ("ssh-ed25519", "looks like"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "is not accepted"),
        ("ssh-ed25519-cert-v01@openssh.com AAAA", "is not accepted"),
        ("ssh-ed25519 not*base64", "damaged"),
        ("x" * 20_000, "far too long"),
    ],
)
def test_malformed_input_says_what_to_paste(text: str, message: str) -> None:
    with pytest.raises(SshKeyError, match=message):
        parse_public_key(text)


def test_a_blob_of_another_type_or_truncated_is_refused(tmp_path: Path) -> None:
    ed_line = _keygen(tmp_path, "ed", "-t", "ed25519").with_suffix(".pub").read_text().split()
    with pytest.raises(SshKeyError, match="does not match its type"):
        parse_public_key(f"ssh-rsa {ed_line[1]}")
    truncated = ed_line[1][:40]
    truncated += "=" * (-len(truncated) % 4)
    with pytest.raises(SshKeyError):
        parse_public_key(f"ssh-ed25519 {truncated}")
