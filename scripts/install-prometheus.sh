#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when either is missing.
# Idempotent: with both on PATH it only prints their versions. Never leaves the packaged
# Prometheus service running: service starts are refused while the package is installed (a
# temporary policy-rc.d), and a daemon started anyway by the package's init script is stopped.
set -euo pipefail

have_tools() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

if have_tools; then
    promtool --version 2>&1 | head -n 1
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus: promtool is missing and apt-get is not available;" \
        "install Prometheus 2.x (prometheus and promtool) and put both on PATH" >&2
    exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-prometheus: needs root (or sudo) to run apt-get" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e $POLICY ]]; then
    # Exit code 101 tells invoke-rc.d that the action is forbidden: the package's postinst then
    # neither starts nor restarts the daemon.
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    own_policy=true
fi
remove_policy() {
    if [[ $own_policy == true ]]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap remove_policy EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
# No recommends: the node exporter would be a second daemon that nothing here reads.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    prometheus

# Belt and braces for hosts whose policy allowed the start: stop the packaged daemon through its
# own init script, which knows the daemon's pid file (only that process is touched).
if [[ -x /etc/init.d/prometheus ]] && "${SUDO[@]}" /etc/init.d/prometheus status >/dev/null 2>&1
then
    "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

if ! have_tools; then
    echo "install-prometheus: the prometheus package installed, but promtool or prometheus" \
        "is still not on PATH" >&2
    exit 1
fi
promtool --version 2>&1 | head -n 1
