#!/usr/bin/env bash
# A local KRaft cluster of KAFKA_BROKERS nodes (default 3) on loopback: each node is a broker and a
# controller of one quorum, run by local-kafka.sh with ports and a data directory of its own. See
# docs/local-broker.md.
#
#   local-kafka-cluster.sh start|stop|status|reset|bootstrap|client-cert NAME
#   local-kafka-cluster.sh start-node N|stop-node N|kill-node N|restart-node N
#
# Node n (1..KAFKA_BROKERS) listens on KAFKA_PORT + 4(n-1) (plaintext, default base 9192), the
# next port (controller) and, with KAFKA_TLS=1, the one after (mutual TLS, one local CA for the
# cluster). KAFKA_ACLS=1 turns on the standard authorizer. Internal topics get min(3, brokers)
# replicas and min.insync.replicas min(2, brokers).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_SCRIPT="$HERE/local-kafka.sh"
CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$HERE/cluster-run}"
BROKERS="${KAFKA_BROKERS:-3}"
BASE="${KAFKA_PORT:-9192}"
TLS="${KAFKA_TLS:-0}"
ACLS="${KAFKA_ACLS:-0}"

say() { echo "local-kafka-cluster: $*" >&2; }
die() {
    echo "local-kafka-cluster: error: $*" >&2
    exit 1
}

[[ "$BROKERS" =~ ^[1-9]$ ]] || die "KAFKA_BROKERS must be 1..9, not '$BROKERS'"

port_of() { echo $((BASE + 4 * ($1 - 1))); }

voters() {
    local n out=""
    for ((n = 1; n <= BROKERS; n++)); do
        out+="${out:+,}$n@127.0.0.1:$(($(port_of "$n") + 1))"
    done
    echo "$out"
}

bootstrap() {
    local n out=""
    for ((n = 1; n <= BROKERS; n++)); do
        out+="${out:+,}127.0.0.1:$(($(port_of "$n") + ${1:-0}))"
    done
    echo "$out"
}

# One cluster id for all nodes, chosen at the first start and kept with the data.
cluster_id() {
    mkdir -p "$CLUSTER_DIR"
    if [[ ! -s "$CLUSTER_DIR/cluster-id" ]]; then
        local id
        while :; do
            id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
            [[ "$id" != -* ]] && break
        done
        echo "$id" >"$CLUSTER_DIR/cluster-id"
    fi
    cat "$CLUSTER_DIR/cluster-id"
}

# node N ARGS...: local-kafka.sh ARGS for node N.
node() {
    local n="$1" port
    shift
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= BROKERS)) || die "no node '$n' (1..$BROKERS)"
    port="$(port_of "$n")"
    KAFKA_RUN_DIR="$CLUSTER_DIR/node-$n" KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT=$((port + 1)) \
        KAFKA_TLS_PORT="$([[ "$TLS" == 1 ]] && echo $((port + 2)))" \
        KAFKA_TLS_DIR="$CLUSTER_DIR/tls" KAFKA_ACLS="$ACLS" KAFKA_NODE_ID="$n" \
        KAFKA_QUORUM_VOTERS="$(voters)" KAFKA_CLUSTER_ID="$(cluster_id)" \
        KAFKA_REPLICATION=$((BROKERS < 3 ? BROKERS : 3)) KAFKA_SASL_PORT="" \
        bash "$NODE_SCRIPT" "$@"
}

# Every node at once: a node of a quorum of three is ready only when a majority runs.
cmd_start() {
    bash "$NODE_SCRIPT" fetch >&2
    cluster_id >/dev/null # chosen before the nodes start in parallel
    local n failed=0 pids=()
    for ((n = 1; n <= BROKERS; n++)); do
        node "$n" start >"$CLUSTER_DIR/start-$n.log" 2>&1 &
        pids+=($!)
    done
    for ((n = 1; n <= BROKERS; n++)); do
        if ! wait "${pids[n - 1]}"; then
            failed=1
            say "node $n did not start:"
            cat "$CLUSTER_DIR/start-$n.log" >&2
        fi
    done
    if ((failed)); then
        cmd_stop
        die "the cluster did not start (see above)"
    fi
    say "$BROKERS nodes running$([[ "$TLS" == 1 ]] && echo ", mutual TLS at $(bootstrap 2)")"
    bootstrap
}

cmd_stop() {
    local n
    for ((n = 1; n <= BROKERS; n++)); do
        node "$n" stop >&2 &
    done
    wait
}

cmd_status() {
    local n rc=0
    for ((n = 1; n <= BROKERS; n++)); do
        if node "$n" status >/dev/null; then
            say "node $n running at 127.0.0.1:$(port_of "$n")"
        else
            say "node $n not running"
            rc=1
        fi
    done
    return "$rc"
}

usage() {
    echo "usage: $(basename "$0") start|stop|status|reset|bootstrap|client-cert NAME|start-node N|stop-node N|kill-node N|restart-node N" >&2
    exit 2
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        reset)
            cmd_stop
            rm -rf "$CLUSTER_DIR"
            say "wiped $CLUSTER_DIR"
            ;;
        bootstrap) bootstrap "$([[ "${1:-}" == tls ]] && echo 2 || echo 0)" ;;
        client-cert)
            [[ "$TLS" == 1 ]] || die "client-cert needs KAFKA_TLS=1"
            node 1 client-cert "$@"
            ;;
        start-node) node "${1:-}" start ;;
        stop-node) node "${1:-}" stop ;;
        kill-node) node "${1:-}" kill ;;
        restart-node) node "${1:-}" restart ;;
        *) usage ;;
    esac
}

main "$@"
