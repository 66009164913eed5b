"""confluent-kafka (librdkafka) producer throughput for `benches/broker_throughput.rs`.

Usage: confluent_produce.py BOOTSTRAP TOPIC RECORDS SIZE
Produces RECORDS records of SIZE bytes with acks=all and idempotence (the Java default), waits for every
delivery report, and prints one JSON line: {"delivered": N, "records_per_sec": X}.
"""

import json
import sys
import time

from confluent_kafka import Producer


def main() -> None:
    bootstrap, topic, records, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 65536,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    delivered = 0
    failed = []

    def on_delivery(err, _msg):
        nonlocal delivered
        if err is None:
            delivered += 1
        elif len(failed) < 5:
            failed.append(str(err))

    payload = b"x" * size
    started = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, payload, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - started
    if failed:
        print(json.dumps({"delivered": delivered, "errors": failed}))
        sys.exit(1)
    print(json.dumps({"delivered": delivered, "records_per_sec": delivered / elapsed}))


if __name__ == "__main__":
    main()
