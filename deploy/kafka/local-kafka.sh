#!/usr/bin/env bash
# A real single-node Kafka broker (KRaft) run from Maven Central jars, for development and CI on
# machines without Docker. See docs/local-broker.md.
#
#   local-kafka.sh start|stop|kill|restart|status|reset|logs [-f]|fetch|client-cert NAME
#
# One node of a cluster of several (local-kafka-cluster.sh) is this script with KAFKA_NODE_ID,
# KAFKA_QUORUM_VOTERS, KAFKA_CLUSTER_ID and KAFKA_REPLICATION set. KAFKA_TLS_PORT adds a mutual-TLS
# listener (a local CA made at the first start, in KAFKA_TLS_DIR); KAFKA_ACLS=1 turns on the
# standard authorizer, with the plaintext listener's anonymous user as the only super user.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LIB_DIR="$HERE/lib"
RUN_DIR="${KAFKA_RUN_DIR:-$HERE/run}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
SASL_PORT="${KAFKA_SASL_PORT:-}"
SASL_USER="${KAFKA_SASL_USER:-scorer}"
SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-scorer-secret}"
TLS_PORT="${KAFKA_TLS_PORT:-}"
ACLS="${KAFKA_ACLS:-0}"
NODE_ID="${KAFKA_NODE_ID:-1}"
VOTERS="${KAFKA_QUORUM_VOTERS:-$NODE_ID@127.0.0.1:$CONTROLLER_PORT}"
REPLICATION="${KAFKA_REPLICATION:-1}"
MIN_ISR=$((REPLICATION < 2 ? REPLICATION : 2))
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
CONFIG="$RUN_DIR/server.properties"
PID_FILE="$RUN_DIR/broker.pid"
ADDR_FILE="$RUN_DIR/bootstrap"
SCRAM_FILE="$RUN_DIR/scram-users"
TLS_DIR="${KAFKA_TLS_DIR:-$RUN_DIR/tls}"
FETCH_STAMP="$LIB_DIR/.fetched"

say() { echo "local-kafka: $*"; }
die() {
    echo "local-kafka: error: $*" >&2
    exit 1
}

now_us() { echo "${EPOCHREALTIME/./}"; }
elapsed() { # microsecond timestamp -> "12.3 s"
    local d=$(($(now_us) - $1))
    printf '%d.%d s' $((d / 1000000)) $((d % 1000000 / 100000))
}

# Exclusive per-run-dir lock so two concurrent start/stop calls cannot race on one broker.
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 30)) 9 || die "timed out waiting for $RUN_DIR/.lock"
}

# The pid of the broker this run dir started, if it is still that java process.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid cmdline
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # A zombie or a recycled pid has a different (or empty) command line.
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$CONFIG"* ]] || return 1
    echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

START_MARK="==== local-kafka start"

# The last 40 lines this start wrote: server.log is appended to across starts, so only what
# follows the latest start mark counts.
tail_logs() {
    local f
    for f in "$LOG_DIR/server.log" "$LOG_DIR/console.log"; do
        if [[ -s "$f" ]]; then
            echo "---- last 40 lines of $f ----" >&2
            awk -v mark="$START_MARK" 'index($0, mark) == 1 { n = 0; next } { buf[n++] = $0 }
                END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i] }' "$f" >&2
        fi
    done
}

check_java() {
    command -v "$JAVA" >/dev/null || die "java not found (Kafka 4 needs Java 17 or newer)"
    local spec
    spec="$("$JAVA" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java.specification.version = //p')"
    [[ "${spec%%.*}" -ge 17 ]] 2>/dev/null || die "Java 17+ is required, found '${spec:-unknown}'"
}

# Copy the broker jars into lib/ once per version of pom.xml; Maven caches them in ~/.m2.
fetch_jars() {
    local want
    want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
    if [[ -f "$FETCH_STAMP" && "$(<"$FETCH_STAMP")" == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven is needed once to fetch the Kafka jars"
    local t0 out
    t0="$(now_us)"
    say "fetching Kafka jars with Maven into $LIB_DIR"
    rm -rf "$LIB_DIR"
    out="$(mktemp)"
    # Maven's output is only worth showing when it failed.
    if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
        >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        die "Maven could not resolve the Kafka jars (see above)"
    fi
    rm -f "$out"
    echo "$want" >"$FETCH_STAMP"
    say "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $(elapsed "$t0")"
}

render_config() {
    local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
    local advertised="PLAINTEXT://127.0.0.1:$PORT"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ -n "$SASL_PORT" ]]; then
        listeners+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
        advertised+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
        protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    fi
    if [[ -n "$TLS_PORT" ]]; then
        listeners+=",SSL://127.0.0.1:$TLS_PORT"
        advertised+=",SSL://127.0.0.1:$TLS_PORT"
        protocols+=",SSL:SSL"
    fi
    sed -e "s|@LISTENERS@|$listeners|" \
        -e "s|@ADVERTISED_LISTENERS@|$advertised|" \
        -e "s|@PROTOCOL_MAP@|$protocols|" \
        -e "s|@NODE_ID@|$NODE_ID|" \
        -e "s|@VOTERS@|$VOTERS|" \
        -e "s|@REPLICATION@|$REPLICATION|g" \
        -e "s|@MIN_ISR@|$MIN_ISR|g" \
        -e "s|@DATA_DIR@|$DATA_DIR|" \
        "$HERE/server.properties.template" >"$CONFIG"
    if [[ -n "$TLS_PORT" ]]; then
        # Mutual TLS: a client is the CN of its certificate (User:scorer for CN=scorer).
        cat >>"$CONFIG" <<EOF

listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$TLS_DIR/broker.pem
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$TLS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9._-]+).*\$/\$1/,DEFAULT
EOF
    fi
    if [[ "$ACLS" == 1 ]]; then
        # The plaintext and controller listeners are the operator's (unauthenticated, so
        # User:ANONYMOUS): brokers, tests and tools use them; clients on the TLS or SASL
        # listeners get only what an ACL grants them.
        cat >>"$CONFIG" <<EOF

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
    fi
    if [[ -n "$SASL_PORT" ]]; then
        # Inter-broker and controller traffic stay on PLAINTEXT; only clients authenticate.
        cat >>"$CONFIG" <<EOF

sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    fi
    if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
        # Later keys win in a Java properties file, so these override the template.
        [[ -f "$KAFKA_EXTRA_CONFIG" ]] || die "KAFKA_EXTRA_CONFIG=$KAFKA_EXTRA_CONFIG is not a file"
        printf '\n# from %s\n' "$KAFKA_EXTRA_CONFIG" >>"$CONFIG"
        cat "$KAFKA_EXTRA_CONFIG" >>"$CONFIG"
    fi
}

random_cluster_id() {
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding; a leading '-'
    # would read as an option on the command line, so draw again.
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && break
    done
    echo "$id"
}

format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local args=(format --config "$CONFIG" --cluster-id "${KAFKA_CLUSTER_ID:-$(random_cluster_id)}")
    if [[ -n "$SASL_PORT" ]]; then
        args+=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]")
    fi
    "$JAVA" -cp "$LIB_DIR/*" kafka.tools.StorageTool "${args[@]}" >"$LOG_DIR/format.log" 2>&1 || {
        cat "$LOG_DIR/format.log" >&2
        die "formatting $DATA_DIR failed"
    }
    if [[ -n "$SASL_PORT" ]]; then
        scram_entry >>"$SCRAM_FILE"
    fi
    say "formatted $DATA_DIR"
}

# The SCRAM credential the broker holds, as one line: the user and a digest of user and password
# (never the password itself), so a changed KAFKA_SASL_PASSWORD is noticed at the next start.
scram_entry() {
    echo "$SASL_USER $(printf '%s:%s' "$SASL_USER" "$SASL_PASSWORD" | sha256sum | cut -d' ' -f1)"
}

# Storage formatted before SASL was wanted has no SCRAM user yet, and a changed password is not
# in the broker yet: set the credential through the broker (ConfigCommand creates or replaces).
ensure_scram_user() {
    [[ -n "$SASL_PORT" ]] || return 0
    grep -qxF "$(scram_entry)" "$SCRAM_FILE" 2>/dev/null && return 0
    "$JAVA" -cp "$LIB_DIR/*" org.apache.kafka.tools.ConfigCommand \
        --bootstrap-server "127.0.0.1:$PORT" --alter --entity-type users \
        --entity-name "$SASL_USER" --add-config "SCRAM-SHA-256=[password=$SASL_PASSWORD]" \
        >>"$LOG_DIR/format.log" 2>&1 || die "could not set the SCRAM credential of $SASL_USER"
    scram_entry >>"$SCRAM_FILE"
}

# A local CA and the broker's certificate (for 127.0.0.1 and localhost), made once per TLS_DIR;
# the nodes of a cluster share one TLS_DIR. Keys are unencrypted PKCS#8, which Kafka's PEM key
# store reads as is.
ensure_tls() {
    [[ -n "$TLS_PORT" ]] || return 0
    command -v openssl >/dev/null || die "openssl not found: it makes the TLS listener's certificates"
    mkdir -p "$TLS_DIR"
    (
        flock 8
        [[ -s "$TLS_DIR/broker.pem" ]] && exit 0
        cd "$TLS_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 365 \
            -subj "/CN=local-kafka-ca" 2>/dev/null
        issue broker "subjectAltName=IP:127.0.0.1,DNS:localhost"
        cat broker.key broker.crt >broker.pem.tmp && mv broker.pem.tmp broker.pem
    ) 8>"$TLS_DIR/.lock" || die "making the TLS certificates in $TLS_DIR failed"
}

# issue NAME [extension]: NAME.key and NAME.crt (CN=NAME) in the current directory, signed by the
# CA in TLS_DIR.
issue() {
    local ext rc=0
    ext="$(mktemp)"
    printf '%s\n' "${2:-extendedKeyUsage=clientAuth}" >"$ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null &&
        openssl x509 -req -in "$1.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
            -CAcreateserial -CAserial "$TLS_DIR/ca.srl" -days 365 -extfile "$ext" \
            -out "$1.crt" 2>/dev/null || rc=$?
    rm -f "$ext" "$1.csr"
    return "$rc"
}

# A client certificate for the principal User:NAME, signed by the broker's CA. Prints the folder
# holding NAME.key, NAME.crt and ca.pem (librdkafka's ssl.key.location, ssl.certificate.location
# and ssl.ca.location).
cmd_client_cert() {
    local name="${1:-}" dir="$TLS_DIR/clients"
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "client-cert needs a NAME of letters, digits, '.', '_' or '-'"
    [[ -n "$TLS_PORT" ]] || die "client-cert needs KAFKA_TLS_PORT (the broker's TLS listener)"
    ensure_tls
    mkdir -p "$dir"
    cp "$TLS_DIR/ca.pem" "$dir/ca.pem"
    if [[ ! -s "$dir/$name.crt" ]]; then
        (cd "$dir" && flock 8 && issue "$name") 8>"$TLS_DIR/.lock" ||
            die "could not issue a certificate for $name"
    fi
    echo "$dir"
}

readiness_python() {
    local py
    for py in "${KAFKA_PYTHON:-}" "$REPO/.venv/bin/python" python3; do
        [[ -n "$py" ]] || continue
        if "$py" -c 'import confluent_kafka' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# 0 ready, 1 timed out, 2 the broker exited, 3 another cluster answers on our port.
wait_ready() {
    local pid="$1" py rc=0 cluster
    cluster="$(sed -n 's/^cluster.id=//p' "$DATA_DIR/meta.properties" 2>/dev/null || true)"
    if py="$(readiness_python)"; then
        "$py" "$HERE/wait_ready.py" --bootstrap "127.0.0.1:$PORT" --pid "$pid" \
            --cluster-id "$cluster" --timeout "$START_TIMEOUT" || rc=$?
        return "$rc"
    fi
    # No Python Kafka client: ask with the Java tool (slower, one JVM per attempt).
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 2
        if "$JAVA" -cp "$LIB_DIR/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "127.0.0.1:$PORT" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

launch() {
    # A session of its own: a Ctrl-C aimed at the caller's terminal or job does not hit the broker;
    # it is stopped by `stop`. Output goes to files so no caller pipe is held open, and the lock
    # descriptor is closed so the broker does not keep holding the run-dir lock.
    # shellcheck disable=SC2086  # HEAP_OPTS and KAFKA_JVM_OPTS are word lists on purpose
    setsid "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        ${KAFKA_JVM_OPTS:-} \
        -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG" </dev/null >"$LOG_DIR/console.log" 2>&1 9>&- &
    echo $!
}

cmd_start() {
    local pid t0 rc=0 port
    if pid="$(running_pid)"; then
        say "already running at $(<"$ADDR_FILE") (pid $pid)"
        return 0
    fi
    t0="$(now_us)"
    check_java
    fetch_jars
    for port in "$PORT" "$CONTROLLER_PORT" $SASL_PORT $TLS_PORT; do
        if port_in_use "$port"; then
            die "127.0.0.1:$port is already in use (another broker?); choose KAFKA_PORT/KAFKA_CONTROLLER_PORT"
        fi
    done
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    ensure_tls
    render_config
    format_storage
    echo "$START_MARK $(date -Iseconds) ====" >>"$LOG_DIR/server.log"
    pid="$(launch)"
    echo "$pid" >"$PID_FILE"
    echo "127.0.0.1:$PORT" >"$ADDR_FILE"
    wait_ready "$pid" || rc=$?
    case "$rc" in
        0) ;;
        2)
            rm -f "$PID_FILE"
            tail_logs
            die "the broker exited during startup"
            ;;
        3)
            stop_pid "$pid"
            rm -f "$PID_FILE"
            die "another Kafka cluster answers on 127.0.0.1:$PORT (a port race with another start?); choose KAFKA_PORT"
            ;;
        *)
            tail_logs
            stop_pid "$pid"
            rm -f "$PID_FILE"
            die "the broker did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT} s"
            ;;
    esac
    ensure_scram_user
    say "started in $(elapsed "$t0") (pid $pid, data $DATA_DIR)"
    [[ -z "$SASL_PORT" ]] || say "SASL_PLAINTEXT/SCRAM-SHA-256 at 127.0.0.1:$SASL_PORT (user $SASL_USER)"
    [[ -z "$TLS_PORT" ]] || say "mutual TLS at 127.0.0.1:$TLS_PORT (CA $TLS_DIR/ca.pem)"
    echo "127.0.0.1:$PORT"
}

alive() { [[ -r "/proc/$1/cmdline" ]] && grep -q kafka.Kafka "/proc/$1/cmdline" 2>/dev/null; }

# SIGTERM lets the broker shut down cleanly (no log recovery on the next start); SIGKILL after
# STOP_TIMEOUT seconds so a wedged JVM never outlives a CI job.
stop_pid() {
    local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            say "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
}

cmd_stop() {
    local pid t0
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    t0="$(now_us)"
    stop_pid "$pid"
    rm -f "$PID_FILE"
    say "stopped pid $pid in $(elapsed "$t0")"
}

# SIGKILL, as a crash or an OOM kill would: no clean shutdown, so the next start recovers its log.
cmd_kill() {
    local pid
    if ! pid="$(running_pid)"; then
        say "not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.05; done
    rm -f "$PID_FILE"
    say "killed pid $pid"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "$(<"$ADDR_FILE")"
        return 0
    fi
    echo "local kafka broker is not running (run dir $RUN_DIR)"
    return 1
}

cmd_reset() {
    cmd_stop
    rm -rf "$DATA_DIR" "$LOG_DIR" "$CONFIG" "$ADDR_FILE" "$SCRAM_FILE"
    say "wiped data and logs in $RUN_DIR"
}

cmd_logs() {
    [[ -f "$LOG_DIR/server.log" ]] || die "no broker log at $LOG_DIR/server.log"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n "${KAFKA_LOG_LINES:-100}" -F "$LOG_DIR/server.log"
    fi
    tail -n "${KAFKA_LOG_LINES:-100}" "$LOG_DIR/server.log"
}

usage() {
    echo "usage: $(basename "$0") start|stop|kill|restart|status|reset|logs [-f]|fetch|client-cert NAME" >&2
    exit 2
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        start) take_lock && cmd_start ;;
        stop) take_lock && cmd_stop ;;
        kill) take_lock && cmd_kill ;;
        restart) take_lock && cmd_stop && cmd_start ;;
        reset) take_lock && cmd_reset ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        fetch) fetch_jars ;;
        client-cert) cmd_client_cert "$@" ;;
        *) usage ;;
    esac
}

main "$@"
