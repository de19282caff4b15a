#!/usr/bin/env bash
# Installs kcat (the C client's command-line tool) from Debian's `kcat` package when it is
# missing: the benchmarks run it as the C client's ceiling beside the service. Idempotent.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
    kcat -V 2>&1 | head -n 1
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-kcat: kcat is missing and apt-get is not available; install kcat" \
        "(https://github.com/edenhill/kcat) and put it on PATH" >&2
    exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-kcat: needs root (or sudo) to run apt-get" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kcat

if ! command -v kcat >/dev/null 2>&1; then
    echo "install-kcat: the kcat package installed, but kcat is still not on PATH" >&2
    exit 1
fi
kcat -V 2>&1 | head -n 1
