#!/usr/bin/env python3
"""Drives confluent-kafka (librdkafka) for the integration tests: a client no one here wrote.

produce: writes --count records to --topic (keys key-<i>, values value-<i>), waits for every delivery report.
consume: joins --group with --protocol (classic or consumer, KIP-848), reads --count records from --topic,
         commits synchronously, leaves the group, and prints one JSON line with what it read and committed.
Exits non-zero with a message on stderr when anything fails or --timeout passes.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def produce(args):
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "acks": "all"})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for i in range(args.count):
        producer.produce(args.topic, key=f"key-{i}", value=f"value-{i}", on_delivery=report)
        producer.poll(0)
    remaining = producer.flush(args.timeout)
    if remaining or failures:
        sys.exit(f"produce: {remaining} undelivered, failures: {failures[:3]}")
    print(json.dumps({"produced": args.count}))


def consume(args):
    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "group.protocol": args.protocol,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.protocol == "classic":
        config["session.timeout.ms"] = 10000
    consumer = Consumer(config)
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    read = 0
    try:
        while read < args.count:
            if time.monotonic() > deadline:
                sys.exit(f"consume: read {read} of {args.count} records before the {args.timeout}s timeout")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            read += 1
        consumer.commit(asynchronous=False)
        assignment = consumer.assignment()
        committed = consumer.committed(assignment, timeout=10)
        offsets = {f"{tp.topic}:{tp.partition}": tp.offset for tp in committed}
    finally:
        consumer.close()
    print(json.dumps({"consumed": read, "committed": offsets}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--group")
    parser.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    if args.command == "produce":
        produce(args)
    else:
        if not args.group:
            parser.error("consume needs --group")
        consume(args)


if __name__ == "__main__":
    main()
