"""Wait until a freshly launched broker answers a metadata request.

Used by local-kafka.sh: a Python client starts in a fraction of the time a JVM-based Kafka tool
needs, so the readiness loop can retry every few hundred milliseconds.

Exit status: 0 ready, 1 timed out, 2 the broker process exited while we waited, 3 a broker of
another cluster answers on that address (two starts raced for one port: ours lost).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_ready(bootstrap: str, pid: int | None, timeout_s: float, cluster_id: str = "") -> int:
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            # Retry the connection quickly instead of librdkafka's backoff of up to 10 s.
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 250,
            # Connection-refused lines are expected while the JVM starts; keep stderr readable.
            "log_level": 0,
        }
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            return 2
        try:
            metadata = admin.list_topics(timeout=1.0)
        except KafkaException:
            continue
        if metadata.brokers:
            return 3 if cluster_id and metadata.cluster_id != cluster_id else 0
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--pid", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--cluster-id", default="", help="the cluster id the broker must report")
    args = parser.parse_args()
    return wait_ready(args.bootstrap, args.pid, args.timeout, args.cluster_id)


if __name__ == "__main__":
    sys.exit(main())
