#!/usr/bin/env python3
"""confluent-kafka's AdminClient (librdkafka) for `make bench` (benches/lag_scan.rs): the lag of every group
of a cluster, as well as this client allows. `list_consumer_group_offsets` accepts one group per call, so it is
called once per group with all calls in flight at once, then `list_offsets` once for every partition.

    python confluent_lag_scan.py BOOTSTRAP            one scan, prints one JSON line, exits
    python confluent_lag_scan.py BOOTSTRAP --serve    one AdminClient for the process; for every line read on
                                                      stdin one scan and one JSON line (warm scans)

A JSON line: {"total_lag":N,"groups":G,"partitions":P,"wall_us":W,"cpu_us":C} (the scan's wall and process
CPU time, librdkafka's threads included).
"""
import json
import sys
import time

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

TIMEOUT_S = 120.0


def scan(admin):
    wall0 = time.perf_counter_ns()
    cpu0 = time.process_time_ns()

    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
    if listed.errors:
        raise RuntimeError(f"list_consumer_groups: {listed.errors}")
    groups = [g.group_id for g in listed.valid]
    # One call per group (the API takes a single group), all in flight together.
    futures = {}
    for g in groups:
        futures.update(
            admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=TIMEOUT_S)
        )
    committed = {}
    for g, future in futures.items():
        result = future.result()
        offsets = []
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise RuntimeError(f"group {g} partition {tp.topic}-{tp.partition}: {tp.error}")
            if tp.offset >= 0:
                offsets.append((tp.topic, tp.partition, tp.offset))
        committed[g] = offsets
    partitions = sorted({(t, p) for offsets in committed.values() for (t, p, _) in offsets})
    # One list_offsets for every partition (librdkafka sends one ListOffsets per leader).
    ends_futures = admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for (t, p) in partitions}, request_timeout=TIMEOUT_S
    )
    ends = {(tp.topic, tp.partition): f.result().offset for tp, f in ends_futures.items()}
    total = 0
    for offsets in committed.values():
        for t, p, offset in offsets:
            end = ends.get((t, p))
            if end is not None:
                total += max(0, end - offset)

    return json.dumps(
        {
            "total_lag": total,
            "groups": len(committed),
            "partitions": len(partitions),
            "wall_us": (time.perf_counter_ns() - wall0) // 1000,
            "cpu_us": (time.process_time_ns() - cpu0) // 1000,
        }
    )


def main():
    if len(sys.argv) < 2:
        print("usage: confluent_lag_scan.py BOOTSTRAP [--serve]", file=sys.stderr)
        sys.exit(2)
    admin = AdminClient({"bootstrap.servers": sys.argv[1], "client.id": "confluent-lag-scan"})
    if len(sys.argv) > 2 and sys.argv[2] == "--serve":
        for _ in sys.stdin:
            print(scan(admin), flush=True)
    else:
        print(scan(admin), flush=True)


if __name__ == "__main__":
    main()
