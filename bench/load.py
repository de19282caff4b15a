"""An open-loop load generator for latency runs: a fixed rate, whatever the service does.

    python -m bench.load --bootstrap-servers HOST:PORT --topic T --rate R --seconds S [--keys K]

Records are due at an even rate from the start; every millisecond the ones due are sent, each
stamped with `ts` = the wall clock (epoch ms) when it is handed to the producer, so a slow service
never slows the load down (a closed loop would hide queueing). The producer lingers 5 ms, as the
service's own producer does (so up to 5 ms of a measured latency is batching here); much
shorter batches cost a broker on two busy cores more than they save. The last line printed
is a JSON object with the number of records sent and how far behind schedule the sender fell.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

import numpy as np
import orjson
from confluent_kafka import Producer

from bench.broker import INPUT_PRODUCER
from bench.workload import key_name, stamped_value

_TICK_S = 0.001


def run(producer: Producer, topic: str, rate: float, seconds: float, keys: int) -> dict[str, float]:
    rng = np.random.default_rng(17)
    rows = rng.normal(0.0, 1.0, (4096, 3)).round(5).tolist()
    names = [key_name(i).encode() for i in range(keys)]
    picks = rng.integers(0, keys, 65_536).tolist()
    halted: list[bool] = []

    def halt(_signum: int, _frame: FrameType | None) -> None:
        halted.append(True)

    signal.signal(signal.SIGTERM, halt)
    total = int(rate * seconds)
    sent = 0
    worst_lag = 0.0
    start = time.monotonic()
    while sent < total and not halted:
        elapsed = time.monotonic() - start
        due = min(total, int(elapsed * rate) + 1)
        worst_lag = max(worst_lag, (due - sent) / rate)
        now_ms = int(time.time() * 1000)
        while sent < due:
            i = sent
            value = stamped_value(rows[i % len(rows)], now_ms)
            try:
                producer.produce(topic, value, names[picks[i % len(picks)]])
            except BufferError:
                producer.poll(_TICK_S)
                continue
            sent += 1
        producer.poll(0)
        pause = sent / rate - (time.monotonic() - start)  # until the next record is due
        if pause > 0:
            time.sleep(max(_TICK_S, pause))
    left = producer.flush(60)
    return {
        "sent": sent - left,
        "seconds": time.monotonic() - start,
        "rate": rate,
        "worst_lag_s": worst_lag,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="records per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--keys", type=int, default=10_000, help="active sequence ids")
    parser.add_argument("--linger-ms", type=float, default=5.0, help="producer linger.ms")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.keys < 1:
        parser.error("--rate, --seconds and --keys must be positive")
    producer = Producer(
        {"bootstrap.servers": args.bootstrap_servers, **INPUT_PRODUCER, "linger.ms": args.linger_ms}
    )
    summary = run(producer, args.topic, args.rate, args.seconds, args.keys)
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
