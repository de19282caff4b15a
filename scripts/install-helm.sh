#!/usr/bin/env bash
# Installs helm (a pinned version, built from the Go module proxy with `go install`) and the CRD
# schemas of deploy/helm/crd-sources.txt (Go modules, into the module cache), for the chart's
# tests. Idempotent: a helm already built for this version is kept. Prints where helm is.
#   HELM_VERSION  the version to build (default below); HELM_DIR  where (default ~/.cache/...)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="${HELM_VERSION:-v3.22.0}"
DIR="${HELM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lstm-scorer/helm-$VERSION}"

if ! command -v go >/dev/null 2>&1; then
    echo "install-helm: Go is missing; the chart tests build helm $VERSION from the Go module" \
        "proxy with it. Install Go 1.22 or newer (https://go.dev/doc/install, or the" \
        "distribution's golang package) and put \`go\` on PATH" >&2
    exit 1
fi

# The link flags helm's own release build sets: its version, and the Kubernetes version it
# assumes by default (that of its client-go, v0.37 -> 1.37), which `go install` alone leaves at 1.20.
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
    LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
if [[ "$("$DIR/helm" version --short 2>/dev/null)" != "$VERSION"* ]]; then
    echo "install-helm: building helm $VERSION (a minute or two the first time) ..."
    mkdir -p "$DIR"
    GOBIN="$DIR" GOFLAGS=-mod=mod go install -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$VERSION"
fi

grep -v '^#' deploy/helm/crd-sources.txt | awk 'NF { print $1 "@" $2 }' | sort -u |
    while read -r module; do
        go mod download "$module"
    done

echo "$DIR/helm"
