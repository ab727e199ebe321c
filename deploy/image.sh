#!/usr/bin/env bash
# Builds the jitbot image from Containerfile with buildah (or podman): the wheel first, then the image.
#   deploy/image.sh                  base image docker.io/library/python:3.11-slim-bookworm (pulled)
#   BASE=local deploy/image.sh       a Debian bookworm base made here with mmdebstrap (no registry needed)
#   TAG=registry.example.com/jitbot:1 deploy/image.sh
# Then check it: deploy/image.sh --check TAG runs `jitbot --version`, `jitbot check`, then deploy/image_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
# crun fails on this kind of sandboxed host; runc with these limits works (RUNTIME=crun to try it).
RUNTIME=${RUNTIME:-runc}
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
if [ "${1:-}" = --check ]; then
  for command in "jitbot --version" "jitbot check"; do
    podman --runtime "$RUNTIME" run --rm "${LIMITS[@]}" "$2" $command
  done
  # The release step, then web until /readyz is 200 (dev OpenBao, Slack stand-in, this host's PostgreSQL).
  exec .venv/bin/python deploy/image_check.py "$2" "$RUNTIME"
fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
TAG=${TAG:-localhost/jitbot:$VERSION}
rm -rf dist
.venv/bin/python -m build --wheel --outdir dist .
# Every dependency as a wheel beside it, at the locked versions: the image build installs with no index.
.venv/bin/python -m pip wheel -q --wheel-dir dist/wheels -c constraints.txt dist/jitbot-*.whl
if [ "${BASE:-}" = local ]; then
  BASE=localhost/debian-python:bookworm
  if ! podman image exists "$BASE"; then
    mmdebstrap --variant=apt --include=python3,python3-venv,ca-certificates bookworm - | podman import - "$BASE"
  fi
fi
BASE=${BASE:-docker.io/library/python:3.11-slim-bookworm}
if command -v buildah >/dev/null; then
  buildah bud --runtime "$RUNTIME" "${LIMITS[@]}" --build-arg BASE="$BASE" -t "$TAG" -f Containerfile .
else
  podman --runtime "$RUNTIME" build "${LIMITS[@]}" --build-arg BASE="$BASE" -t "$TAG" -f Containerfile .
fi
echo "built $TAG"
