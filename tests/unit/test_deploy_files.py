"""The image, compose and Kubernetes files run the Procfile's processes, probe /livez and /readyz, and hold no secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.health import Probes

ROOT = Path(__file__).resolve().parents[2]
SECRETISH = re.compile(r"TOKEN|SECRET|PASSWORD|SECRET_ID", re.I)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def command_of(container: dict[str, Any]) -> str:
    """The command as a shell would run it: `sh -c "exec X"` is X (the image runs it so that $PORT expands)."""
    words = container["command"]
    text = words[2].removeprefix("exec ") if words[:2] == ["sh", "-c"] else " ".join(words)
    return text.replace('"$PORT"', "$PORT").replace('"$$PORT"', "$PORT")


def test_compose_runs_every_procfile_process_with_secrets_from_the_environment():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name, command in procfile().items():
        assert command_of(services[name]) == command, name
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRETISH.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key} must come from the environment"


def test_kubernetes_runs_every_procfile_process_and_probes_liveness_apart_from_readiness():
    documents = list(yaml.safe_load_all((ROOT / "deploy/k8s/jitbot.yaml").read_text()))
    containers = {}
    for doc in documents:
        if doc["kind"] in ("Job", "Deployment"):
            spec = doc["spec"]["template"]["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            for container in spec["containers"]:
                containers[container["name"]] = (doc["kind"], container)
                assert not [e for e in container.get("env", []) if SECRETISH.search(e["name"])], "secrets only by secretRef"
    for name, command in procfile().items():
        kind, container = containers[name]
        assert command_of(container) == command, name
        if kind == "Deployment":
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The paths the manifests probe are the ones bot/health.py answers (a Vault outage: unready, still alive).
    probes = Probes(lambda: {"database": True, "vault": False})
    answers = {}
    for path in ("/livez", "/readyz"):
        probes.answer({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, _h, p=path: answers.update({p: status}))
    assert answers == {"/livez": "200 OK", "/readyz": "503 Service Unavailable"}


def test_the_image_runs_as_a_user_and_bakes_in_no_secret():
    text = (ROOT / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    for line in re.findall(r"^(?:ENV|ARG)\s+.*(?:\n\s+.*\\?)*", text, re.M):
        assert not SECRETISH.search(line), line
    ignore = (ROOT / ".containerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"], "the build context is the wheel and the lock alone"
    assert "web" in procfile() and 'jitbot web --port \\"$PORT\\"' in text  # CMD: the Procfile's web
