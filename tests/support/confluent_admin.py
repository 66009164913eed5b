#!/usr/bin/env python3
"""confluent-kafka's AdminClient (librdkafka) on consumer groups, for the integration tests. Each command prints
one JSON line; a failed admin call prints {"error": "<librdkafka error name>"} and exits 0, so that tests can
assert on refusals.

list:      {"groups": [{"group_id", "state", "simple"}]}
describe:  --group G: {"state", "assignor", "simple", "members": [{"member_id", "client_id", "host",
           "instance_id", "assignment": [[topic, partition], ...]}]}
offsets:   --group G [--topic T --partitions 0,1]: {"offsets": {"topic:partition": offset}} (all the group's
           committed offsets, or those of the partitions named; -1001 for a partition without one)
alter:     --group G --topic T --partitions 0,1 --offset N: {"altered": {"topic:partition": offset}}
delete:    --group G: {"deleted": G}
"""
import argparse
import json

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient


def failure(exc):
    err = exc.args[0] if exc.args else None
    name = err.name() if hasattr(err, "name") else str(exc)
    print(json.dumps({"error": name}))


def partitions_of(tps):
    return {f"{tp.topic}:{tp.partition}": tp.offset for tp in tps}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "describe", "offsets", "alter", "delete"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group")
    parser.add_argument("--topic")
    parser.add_argument("--partitions", default="0")
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    if args.command != "list" and not args.group:
        parser.error(f"{args.command} needs --group")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    timeout = 30
    try:
        if args.command == "list":
            result = admin.list_consumer_groups(request_timeout=timeout).result()
            groups = [
                {"group_id": g.group_id, "state": g.state.name, "simple": g.is_simple_consumer_group}
                for g in result.valid
            ]
            print(json.dumps({"groups": groups}))
        elif args.command == "describe":
            d = admin.describe_consumer_groups([args.group], request_timeout=timeout)[args.group].result()
            members = [
                {
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "instance_id": m.group_instance_id,
                    "assignment": sorted([tp.topic, tp.partition] for tp in m.assignment.topic_partitions),
                }
                for m in d.members
            ]
            print(
                json.dumps(
                    {
                        "state": d.state.name,
                        "assignor": d.partition_assignor,
                        "simple": d.is_simple_consumer_group,
                        "members": members,
                    }
                )
            )
        elif args.command == "offsets":
            named = [TopicPartition(args.topic, int(p)) for p in args.partitions.split(",")] if args.topic else None
            request = [ConsumerGroupTopicPartitions(args.group, named)]
            result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[args.group].result()
            print(json.dumps({"offsets": partitions_of(result.topic_partitions)}))
        elif args.command == "alter":
            tps = [TopicPartition(args.topic, int(p), args.offset) for p in args.partitions.split(",")]
            request = [ConsumerGroupTopicPartitions(args.group, tps)]
            result = admin.alter_consumer_group_offsets(request, request_timeout=timeout)[args.group].result()
            errors = [tp.error.name() for tp in result.topic_partitions if tp.error]
            if errors:
                print(json.dumps({"error": errors[0]}))
            else:
                print(json.dumps({"altered": partitions_of(result.topic_partitions)}))
        elif args.command == "delete":
            admin.delete_consumer_groups([args.group], request_timeout=timeout)[args.group].result()
            print(json.dumps({"deleted": args.group}))
    except KafkaException as exc:
        failure(exc)


if __name__ == "__main__":
    main()
