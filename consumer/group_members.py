"""The static members of a consumer group, looked up in a process of its own.

librdkafka's requests to a group coordinator from its admin client (DescribeConsumerGroups among
them) can abort the whole process when a broker connection drops mid-request: an assertion on a
freed object (`rd_kafka_enq_once_del_source_return: Assertion 'eonce->refcnt > 0' failed`),
seen here in a rolling restart of the brokers. A worker must not die of a lookup that only
spares its readers a wait, so the lookup runs in a child process; a child that dies is a lookup
that failed, and the broker's transaction timeout does the fencing's work, later.

The child, `python -m consumer.group_members`, reads `{"properties", "group", "timeout_s"}` as
JSON on stdin and writes the group's static members' instance ids as a JSON list on stdout; on a
failed lookup it exits 1 with the error on stderr.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping

import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# Beyond the lookup's own timeout: the child's start (the interpreter and the client library).
_START_S = 10.0


class GroupLookupError(RuntimeError):
    """The group's members could not be read (the reason is the message)."""


def static_members_of(
    properties: Mapping[str, str | int | float | bool], group: str, timeout_s: float
) -> set[str]:
    """The instance ids of the group's static members, from a child process."""
    request = orjson.dumps({"properties": dict(properties), "group": group, "timeout_s": timeout_s})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "consumer.group_members"],
            input=request,
            capture_output=True,
            timeout=timeout_s + _START_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GroupLookupError(f"no answer in {timeout_s + _START_S:g} s") from exc
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GroupLookupError(f"exit status {done.returncode}: {said[-1] if said else ''}")
    found = orjson.loads(done.stdout)
    if not isinstance(found, list) or not all(isinstance(i, str) for i in found):
        raise GroupLookupError(f"not a list of instance ids: {done.stdout[:200]!r}")
    return set(found)


def static_members(instance_ids: Iterable[str | None]) -> set[str]:
    """Members without an instance id (dynamic members) have no transactional id of ours."""
    return {i for i in instance_ids if i}


def main() -> int:
    request = orjson.loads(sys.stdin.buffer.read())
    admin = AdminClient(request["properties"])
    try:
        [future] = admin.describe_consumer_groups(
            [request["group"]], request_timeout=request["timeout_s"]
        ).values()
        members = future.result().members
    except KafkaException as exc:
        print(exc, file=sys.stderr)
        return 1
    ids = sorted(static_members(m.group_instance_id for m in members))
    sys.stdout.buffer.write(orjson.dumps(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
