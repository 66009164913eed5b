"""confluent-kafka (librdkafka) producer throughput for `benches/broker_throughput.rs`.

Usage: confluent_produce.py BOOTSTRAP TOPIC RECORDS SIZE [CLIENT_PROPERTIES]
Produces RECORDS records of SIZE bytes with acks=all and idempotence (the Java default), waits for every
delivery report, and prints one JSON line: {"delivered": N, "records_per_sec": X}.

CLIENT_PROPERTIES: a file of librdkafka settings, one `key=value` a line (`#` comments), added to the
producer's; how the SASL_SSL runs pass security.protocol, sasl.* and ssl.ca.location, so that no password is a
process argument.
"""

import json
import sys
import time

from confluent_kafka import KafkaError, Producer


def client_properties(path: str) -> dict:
    settings = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                settings[key.strip()] = value.strip()
    return settings


def main() -> None:
    bootstrap, topic, records, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 65536,
        "queue.buffering.max.messages": 1_000_000,
    }
    if len(sys.argv) > 5:
        config.update(client_properties(sys.argv[5]))
    fatal = []

    def on_error(err):
        # librdkafka retries a refused login or a TLS failure forever: stop at once instead.
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) or err.fatal():
            fatal.append(str(err))

    config["error_cb"] = on_error
    producer = Producer(config)
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
                if fatal:
                    break
        producer.poll(0)
        if fatal:
            break
    if not fatal:
        producer.flush(120)
    elapsed = time.perf_counter() - started
    if failed or fatal:
        print(json.dumps({"delivered": delivered, "errors": fatal + failed}))
        sys.exit(1)
    print(json.dumps({"delivered": delivered, "records_per_sec": delivered / elapsed}))


if __name__ == "__main__":
    main()
