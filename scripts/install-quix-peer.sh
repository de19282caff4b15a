#!/usr/bin/env bash
# Builds the virtual environment of the Quix Streams peer (bench/peers/quix_scorer.py): Quix pins
# confluent-kafka below 2.13, older than the service's, so the peer gets an environment of its
# own, with the same numpy and h5py ranges as the service (it runs the service's model step).
# Idempotent; prints the environment's python. QUIX_PEER_VENV overrides where it goes.
set -euo pipefail

QUIX_VERSION=3.28.1
VENV=${QUIX_PEER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lstm-scorer/quix-peer-$QUIX_VERSION}
PYTHON=${PYTHON:-python3.11}

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import quixstreams, numpy, h5py" 2>/dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    "quixstreams==$QUIX_VERSION" "numpy>=1.26,<3" "h5py>=3.11,<4" >&2
echo "$VENV/bin/python"
