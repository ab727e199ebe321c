#!/usr/bin/env bash
# Writes constraints.txt from pyproject.toml with pip-compile (pip-tools, a dev dependency); `--check` only checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python deploy/lock.py "$@"
