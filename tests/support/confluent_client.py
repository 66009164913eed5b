#!/usr/bin/env python3
"""Drives confluent-kafka (librdkafka) for the integration tests: a client no one here wrote.

produce: writes --count records to --topic (keys key-<i>, values value-<i>), waits for every delivery report.
         With --timestamp-start MS (and --timestamp-step MS, default 1000) record i carries the timestamp
         start + i * step; with --partition P every record goes to partition P.
idempotent-produce: like produce, with enable.idempotence=true (acks=all, up to five batches in flight, retries
         that the broker must recognise as duplicates); prints {"produced": N, "offsets": {"P": [first, last]}}.
consume: joins --group with --protocol (classic or consumer, KIP-848), reads --count records from --topic,
         commits synchronously, leaves the group, and prints one JSON line with what it read and committed.
member:  joins --group and stays in it: prints {"ready": true, "assignment": [...]} once it owns all of the
         topic's partitions (or --expect-partitions N), then polls until SIGTERM, when it leaves the group
         cleanly. --instance-id makes it a static member (group.instance.id).
run:     (with --protocol share: a ShareConsumer, KIP-932, whose records are acknowledged once processed, ready
         after its first poll.)
         what a consumer Deployment's pod would run (tests/support/kubelet.rs starts one per replica): subscribes
         to --topics (comma-separated) in --group and consumes until SIGTERM. Each record's offset is stored
         after --processing-delay-ms (a sleep per record, to build up lag) and committed by auto-commit every
         500 ms and on close. Prints {"ready": true, "assigned": [...], "member_id": ...} once it is in the
         group: at its first assignment or, as librdkafka makes no rebalance callback for a KIP-848 member that
         gets no partitions, when the group coordinator lists it as a member with no partitions, current or
         target (a group may have more members than partitions). Then one line per rebalance callback
         ({"assigned": [...]}, {"revoked": [...]}), {"consumed": N} every few seconds while records arrive, and
         {"closed": true, "consumed": N} after leaving the group on SIGTERM (a static member, one with
         --instance-id, does not leave: the broker keeps it until its session times out).
         With --shutdown-delay-ms N it goes on consuming (and committing) for N ms after SIGTERM before it
         closes: a consumer that takes long to finish its work and leave ({"stopping": true} when it starts).
assign-commit: what a consumer using assign() instead of subscribe() does: no group membership, yet commits
         into --group. Assigns --partition of --topic and, every --commit-interval-ms, commits the offset
         --offset, then --offset + 1, + 2, ... (one more each time) until SIGTERM. Kafka refuses these commits
         (UNKNOWN_MEMBER_ID) while the group has members and takes them once it is Empty: each attempt prints
         {"commit": offset, "ok": bool, "error": ...}. Prints {"ready": true} after its first attempt.
commit:  commits --offset for partitions 0 to --partitions - 1 of --topic into --group in one synchronous commit,
         without joining it (like assign-commit: generation -1, for a group without members); prints
         {"ok": true} or {"ok": false, "error": ...} (a failed partition counts as a failed commit).
stream:  a live producer: produces --rate records per second (keys key-<i>, spread over the partitions) until
         SIGTERM; prints {"ready": true} after the first delivery and {"produced": N} when it stops.
txn-commit: commits --offset for --partition of --topic in --group inside a transaction of a transactional
         producer (transactional.id --transactional-id): init_transactions, begin_transaction,
         send_offsets_to_transaction with the group's metadata (a consumer of --group that never joins: generation
         -1, as for a group without members), then commit_transaction, or abort_transaction with --abort.
         Prints {"committed": true} or {"aborted": true}. With --hold it writes --count records to --partition in
         the same transaction, prints {"open": true, "produced": N} and keeps the transaction open until SIGTERM.
txn-produce: writes --count records (keys key-<i>) to --partition (default 0) of --topic in one transaction of a
         transactional producer (--transactional-id), then commits it, or aborts it with --abort. Prints
         {"produced": N, "committed": true} or {"produced": N, "aborted": true}.
txn-transform: consume-transform-produce: joins --group (read_committed, no auto-commit) on --topic and, in
         transactions of a transactional producer (--transactional-id) of up to --batch records each, writes every
         record read to --output-topic (same key, value "t-" + value) and commits the group's offsets with
         send_offsets_to_transaction (the consumer's positions and group metadata), until --count records are
         transformed. Prints {"transformed": N, "transactions": T}.
read-all: reads every partition of --topic from the beginning to its end (assign(), no commits; --group is
         only the consumer's group.id) with --isolation, and prints {"count": N, "values": [...]}.

consume takes --isolation read_committed (librdkafka's isolation.level; default read_uncommitted).

Security (all optional; the default is PLAINTEXT): --security-protocol (PLAINTEXT, SSL, SASL_PLAINTEXT,
SASL_SSL), --sasl-mechanism and --sasl-username with the password in the environment variable
KGO_SASL_PASSWORD, --ca (CA certificate PEM to verify the broker, host name included), --cert and --key
(client certificate and key PEM for mutual TLS).

Exits non-zero with a message on stderr when anything fails or --timeout passes. librdkafka retries a failed
SASL authentication or TLS handshake forever and reports it only through error_cb; this script exits with
status 3 and "authentication failed: ..." or "TLS failed ..." as soon as it does (a TLS alert from the broker,
e.g. for a missing client certificate, counts as a TLS failure although librdkafka calls it a transport error).
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

EXIT_SECURITY_FAILURE = 3


class Errors:
    """error_cb for librdkafka: remembers errors; `check` ends the process on a fatal one."""

    def __init__(self, command):
        self.command = command
        self.seen = []

    def __call__(self, err):
        self.seen.append(err)
        if err.code() == KafkaError._AUTHENTICATION:
            self.die(f"authentication failed: {err.str()}")
        if err.code() == KafkaError._SSL:
            self.die(f"TLS failed: {err.str()}")
        if err.code() == KafkaError._TRANSPORT and ("ssl/tls alert" in err.str() or "tlsv13 alert" in err.str()):
            # With TLS 1.3 the client's handshake is over before the broker checks the client certificate;
            # a refusal comes as an alert on the first read, which librdkafka reports as a transport error
            # ("ssl/tls alert bad certificate" from Java's TLS, "tlsv13 alert certificate required" from rustls).
            self.die(f"TLS failed (the broker sent an alert): {err.str()}")
        if err.fatal():
            self.die(f"fatal error: {err.str()}")

    def die(self, message):
        # os._exit: closing a client whose broker refuses it can block for as long as librdkafka retries.
        sys.stderr.write(f"{self.command}: {message}\n")
        sys.stderr.flush()
        os._exit(EXIT_SECURITY_FAILURE)

    def summary(self):
        return "; ".join(err.str() for err in self.seen[-5:]) or "none"


def client_config(args, errors):
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": args.security_protocol,
        "error_cb": errors,
    }
    if args.sasl_mechanism:
        password = os.environ.get("KGO_SASL_PASSWORD")
        if not args.sasl_username or password is None:
            sys.exit("--sasl-mechanism needs --sasl-username and the password in KGO_SASL_PASSWORD")
        config.update(
            {"sasl.mechanism": args.sasl_mechanism, "sasl.username": args.sasl_username, "sasl.password": password}
        )
    if "SSL" in args.security_protocol:
        config["ssl.endpoint.identification.algorithm"] = "https"
    for flag, key in [("ca", "ssl.ca.location"), ("cert", "ssl.certificate.location"), ("key", "ssl.key.location")]:
        if getattr(args, flag):
            config[key] = getattr(args, flag)
    return config


def produce(args):
    errors = Errors("produce")
    settings = {"linger.ms": 5, "acks": "all"}
    if args.value_bytes:
        # Large values in large batches (one batch holds many records): what batched readers must cope with.
        settings.update({"linger.ms": 200, "batch.size": 1048576, "batch.num.messages": 100000})
    producer = Producer({**client_config(args, errors), **settings})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for i in range(args.count):
        extra = {}
        if args.timestamp_start is not None:
            extra["timestamp"] = args.timestamp_start + i * args.timestamp_step
        if args.partition is not None:
            extra["partition"] = args.partition
        value = f"value-{i}".ljust(args.value_bytes, "x")
        producer.produce(args.topic, key=f"key-{i}", value=value, on_delivery=report, **extra)
        producer.poll(0)
    deadline = time.monotonic() + args.timeout
    remaining = producer.flush(0.5)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(0.5)
    if remaining or failures:
        sys.exit(
            f"produce: {remaining} undelivered after {args.timeout}s, failures: {failures[:3]}, "
            f"client errors: {errors.summary()}"
        )
    print(json.dumps({"produced": args.count}))


def idempotent_produce(args):
    errors = Errors("idempotent-produce")
    producer = Producer(
        {
            **client_config(args, errors),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "max.in.flight.requests.per.connection": 5,
        }
    )
    failures, offsets = [], {}

    def report(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        first, last = offsets.get(str(msg.partition()), (msg.offset(), msg.offset()))
        offsets[str(msg.partition())] = (min(first, msg.offset()), max(last, msg.offset()))

    for i in range(args.count):
        extra = {} if args.partition is None else {"partition": args.partition}
        producer.produce(args.topic, key=f"key-{i}", value=f"value-{i}", on_delivery=report, **extra)
        producer.poll(0)
    remaining = producer.flush(args.timeout)
    if remaining or failures:
        sys.exit(
            f"idempotent-produce: {remaining} undelivered after {args.timeout}s, failures: {failures[:3]}, "
            f"client errors: {errors.summary()}"
        )
    print(json.dumps({"produced": args.count, "offsets": offsets}))


def consume(args):
    errors = Errors("consume")
    config = {
        **client_config(args, errors),
        "group.id": args.group,
        "group.protocol": args.protocol,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": args.isolation,
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
                sys.exit(
                    f"consume: read {read} of {args.count} records before the {args.timeout}s timeout, "
                    f"client errors: {errors.summary()}"
                )
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


def txn_commit(args):
    errors = Errors("txn-commit")
    config = client_config(args, errors)
    producer = Producer({**config, "transactional.id": args.transactional_id})
    consumer = Consumer({**config, "group.id": args.group, "enable.auto.commit": False})
    try:
        producer.init_transactions(args.timeout)
        producer.begin_transaction()
        offsets = [TopicPartition(args.topic, args.partition, args.offset)]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), args.timeout)
        if args.hold:
            import signal
            import time

            # Records in the same open transaction (they hold the partition's last stable offset back).
            for i in range(args.count):
                producer.produce(args.topic, key=f"key-{i}", value=f"value-{i}", partition=args.partition)
            if producer.flush(args.timeout):
                sys.exit("txn-commit: records undelivered")
            stop = []
            signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
            print(json.dumps({"open": True, "produced": args.count}), flush=True)
            while not stop:
                time.sleep(0.05)
        if args.abort:
            producer.abort_transaction(args.timeout)
        else:
            producer.commit_transaction(args.timeout)
    finally:
        consumer.close()
    print(json.dumps({"aborted": True} if args.abort else {"committed": True}))


def txn_produce(args):
    errors = Errors("txn-produce")
    producer = Producer({**client_config(args, errors), "transactional.id": args.transactional_id})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    producer.init_transactions(args.timeout)
    producer.begin_transaction()
    for i in range(args.count):
        producer.produce(
            args.topic, key=f"key-{i}", value=f"value-{i}", partition=args.partition or 0, on_delivery=report
        )
        producer.poll(0)
    remaining = producer.flush(args.timeout)
    if remaining or failures:
        sys.exit(f"txn-produce: {remaining} undelivered, failures: {failures[:3]}, client errors: {errors.summary()}")
    if args.abort:
        producer.abort_transaction(args.timeout)
    else:
        producer.commit_transaction(args.timeout)
    print(json.dumps({"produced": args.count, "aborted" if args.abort else "committed": True}))


def txn_transform(args):
    errors = Errors("txn-transform")
    config = client_config(args, errors)
    consumer = Consumer(
        {
            **config,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "session.timeout.ms": 10000,
        }
    )
    producer = Producer({**config, "transactional.id": args.transactional_id, "linger.ms": 5})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    producer.init_transactions(args.timeout)
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    transformed, transactions = 0, 0
    try:
        while transformed < args.count:
            if time.monotonic() > deadline:
                sys.exit(
                    f"txn-transform: transformed {transformed} of {args.count} records before the {args.timeout}s "
                    f"timeout, client errors: {errors.summary()}"
                )
            msgs = consumer.consume(num_messages=min(args.batch, args.count - transformed), timeout=0.5)
            if not msgs:
                continue
            producer.begin_transaction()
            for msg in msgs:
                if msg.error():
                    raise KafkaException(msg.error())
                producer.produce(
                    args.output_topic, key=msg.key(), value=b"t-" + msg.value(), on_delivery=report
                )
                producer.poll(0)
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), args.timeout)
            producer.commit_transaction(args.timeout)
            if failures:
                sys.exit(f"txn-transform: delivery failures {failures[:3]}, client errors: {errors.summary()}")
            transformed += len(msgs)
            transactions += 1
    finally:
        consumer.close()
    print(json.dumps({"transformed": transformed, "transactions": transactions}))


def read_all(args):
    errors = Errors("read-all")
    consumer = Consumer(
        {
            **client_config(args, errors),
            "group.id": args.group,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": args.isolation,
        }
    )
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    at_end, values = set(), []
    deadline = time.monotonic() + args.timeout
    try:
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                sys.exit(
                    f"read-all: partitions {sorted(at_end)} of {len(partitions)} at their end after {args.timeout}s "
                    f"(read {len(values)}), client errors: {errors.summary()}"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            at_end.discard(msg.partition())
            values.append(msg.value().decode())
    finally:
        consumer.close()
    print(json.dumps({"count": len(values), "values": values}))


def member(args):
    import signal

    errors = Errors("member")
    config = {
        **client_config(args, errors),
        "group.id": args.group,
        "group.protocol": args.protocol,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "client.id": args.client_id,
    }
    if args.protocol == "classic":
        config["session.timeout.ms"] = 10000
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    expected = args.expect_partitions
    if expected is None:
        expected = len(consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions)
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    ready = False
    while not stop:
        consumer.poll(0.2)
        if not ready:
            owned = sorted((tp.topic, tp.partition) for tp in consumer.assignment())
            if len(owned) >= expected:
                print(json.dumps({"ready": True, "assignment": owned}), flush=True)
                ready = True
            elif time.monotonic() > deadline:
                sys.exit(f"member: owns {owned} but expected {expected} partitions after {args.timeout}s")
    consumer.close()


def group_member(admin, group, member_id):
    """The coordinator's description of `member_id` in `group`, or None (not a member yet, or no answer)."""
    if not member_id:
        return None
    try:
        description = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
    except KafkaException:
        return None
    return next((m for m in description.members if m.member_id == member_id), None)


def owned(*assignments):
    """Whether any of these MemberAssignments (None for none) holds a partition."""
    return any(a is not None and a.topic_partitions for a in assignments)


def run_share(args, topics):
    """`run` for a share group (KIP-932): a ShareConsumer whose records are acknowledged (implicitly, on the next
    poll) once processed. Ready once its first poll returned: a share group has no assignment to wait for."""
    import signal

    from confluent_kafka import ShareConsumer

    errors = Errors("run")
    consumer = ShareConsumer({**client_config(args, errors), "group.id": args.group, "client.id": args.client_id})
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    consumer.subscribe(topics)
    delay = args.processing_delay_ms / 1000.0
    consumed, reported, last_report, ready = 0, 0, time.monotonic(), False
    stop_at = None
    while True:
        if stop:
            if stop_at is None:
                stop_at = time.monotonic() + args.shutdown_delay_ms / 1000.0
            if time.monotonic() >= stop_at:
                break
        messages = consumer.poll(0.2)
        if not ready:
            ready = True
            print(json.dumps({"ready": True, "assigned": [], "member_id": ""}), flush=True)
        for msg in messages:
            if msg.error():
                print(json.dumps({"error": msg.error().str()}), flush=True)
                continue
            if delay > 0:
                time.sleep(delay)
            consumed += 1
        now = time.monotonic()
        if consumed != reported and now - last_report >= 2:
            reported, last_report = consumed, now
            print(json.dumps({"consumed": reported}), flush=True)
    consumer.close()  # acknowledges what was processed and leaves the group
    print(json.dumps({"closed": True, "consumed": consumed}), flush=True)


def run(args):
    import signal

    errors = Errors("run")
    topics = [t for t in args.topics.split(",") if t]
    if not topics:
        sys.exit("run: --topics is empty")
    if args.protocol == "share":
        return run_share(args, topics)
    config = {
        **client_config(args, errors),
        "group.id": args.group,
        "group.protocol": args.protocol,
        "client.id": args.client_id,
        "auto.offset.reset": args.auto_offset_reset,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 500,
        # Offsets are stored once a record is processed (after the delay), not when poll() returns it.
        "enable.auto.offset.store": False,
    }
    if args.protocol == "classic":
        # With group.protocol=consumer the session timeout is the broker's (group.consumer.session.timeout.ms).
        config["session.timeout.ms"] = args.session_timeout_ms
        config["heartbeat.interval.ms"] = min(3000, max(args.session_timeout_ms // 3, 100))
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    state = {"ready": False, "consumed": 0}

    def partitions(tps):
        return sorted([tp.topic, tp.partition] for tp in tps)

    def on_assign(c, tps):
        line = {"assigned": partitions(tps), "member_id": c.memberid()}
        if not state["ready"]:
            state["ready"] = True
            line = {"ready": True, **line}
        print(json.dumps(line), flush=True)

    def on_revoke(c, tps):
        print(json.dumps({"revoked": partitions(tps)}), flush=True)

    consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
    delay = args.processing_delay_ms / 1000.0
    reported, last_report = 0, time.monotonic()
    admin, next_check = None, time.monotonic() + 1
    stop_at = None
    while True:
        if stop:
            if stop_at is None:
                stop_at = time.monotonic() + args.shutdown_delay_ms / 1000.0
                if args.shutdown_delay_ms > 0:
                    print(json.dumps({"stopping": True, "delay_ms": args.shutdown_delay_ms}), flush=True)
            if time.monotonic() >= stop_at:
                break
        if args.protocol == "consumer" and not state["ready"] and time.monotonic() >= next_check:
            # librdkafka calls on_assign for a KIP-848 member only once it gets partitions; a member of a group
            # with more members than partitions never does. Ask the group coordinator whether it is a member
            # whose assignment is settled on no partitions (with some, on_assign comes).
            next_check = time.monotonic() + 0.5
            admin = admin or AdminClient(client_config(args, errors))
            member = group_member(admin, args.group, consumer.memberid())
            if member is not None and not state["ready"] and not owned(member.assignment, member.target_assignment):
                state["ready"] = True
                print(json.dumps({"ready": True, "assigned": [], "member_id": member.member_id}), flush=True)
        msg = consumer.poll(0.2)
        if msg is not None:
            if msg.error():
                # e.g. a topic that does not exist yet; fatal errors end the process through error_cb
                print(json.dumps({"error": msg.error().str()}), flush=True)
            else:
                if delay > 0:
                    time.sleep(delay)
                consumer.store_offsets(msg)
                state["consumed"] += 1
        now = time.monotonic()
        if state["consumed"] != reported and now - last_report >= 2:
            reported, last_report = state["consumed"], now
            print(json.dumps({"consumed": reported}), flush=True)
    consumer.close()  # commits the stored offsets and leaves the group
    print(json.dumps({"closed": True, "consumed": state["consumed"]}), flush=True)


def assign_commit(args):
    import signal

    errors = Errors("assign-commit")
    consumer = Consumer(
        {
            **client_config(args, errors),
            "group.id": args.group,
            "client.id": args.client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    partition = args.partition if args.partition is not None else 0
    start = args.offset if args.offset is not None else 0
    consumer.assign([TopicPartition(args.topic, partition, start)])
    deadline = time.monotonic() + args.timeout
    offset, next_commit, ready = start, time.monotonic(), False
    while not stop and time.monotonic() < deadline:
        consumer.poll(0.1)
        if time.monotonic() < next_commit:
            continue
        next_commit = time.monotonic() + args.commit_interval_ms / 1000.0
        line = {"commit": offset}
        try:
            consumer.commit(offsets=[TopicPartition(args.topic, partition, offset)], asynchronous=False)
            line["ok"] = True
            offset += 1
        except KafkaException as e:
            line.update({"ok": False, "error": str(e)})
        print(json.dumps(line), flush=True)
        if not ready:
            ready = True
            print(json.dumps({"ready": True}), flush=True)
    consumer.close()


def commit(args):
    errors = Errors("commit")
    consumer = Consumer({**client_config(args, errors), "group.id": args.group, "enable.auto.commit": False})
    offsets = [TopicPartition(args.topic, p, args.offset or 0) for p in range(args.partitions)]
    line = {"ok": True}
    try:
        committed = consumer.commit(offsets=offsets, asynchronous=False) or []
        failed = {str(tp.partition): tp.error.str() for tp in committed if tp.error is not None}
        if failed:
            line = {"ok": False, "error": failed}
    except KafkaException as e:
        line = {"ok": False, "error": str(e)}
    consumer.close()
    print(json.dumps(line), flush=True)


def stream(args):
    import signal

    errors = Errors("stream")
    producer = Producer({**client_config(args, errors), "linger.ms": 5, "acks": "all"})
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    state = {"delivered": 0, "ready": False}

    def report(err, _msg):
        if err is None:
            state["delivered"] += 1
            if not state["ready"]:
                state["ready"] = True
                print(json.dumps({"ready": True}), flush=True)

    interval = 1.0 / max(args.rate, 0.001)
    started, i = time.monotonic(), 0
    deadline = started + args.timeout
    while not stop and time.monotonic() < deadline:
        due = started + i * interval
        now = time.monotonic()
        if now < due:
            producer.poll(min(due - now, 0.1))
            continue
        producer.produce(args.topic, key=f"key-{i}", value=f"value-{i}", on_delivery=report)
        producer.poll(0)
        i += 1
    producer.flush(10)
    print(json.dumps({"produced": state["delivered"]}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command",
        choices=[
            "produce",
            "idempotent-produce",
            "consume",
            "member",
            "run",
            "txn-commit",
            "txn-produce",
            "assign-commit",
            "commit",
            "stream",
            "txn-transform",
            "read-all",
        ],
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", help="the topic (every command but run)")
    parser.add_argument("--topics", help="run: comma-separated topics to subscribe to")
    parser.add_argument("--auto-offset-reset", choices=["earliest", "latest", "error"], default="earliest")
    parser.add_argument("--processing-delay-ms", type=int, default=0, help="run: sleep per record")
    parser.add_argument("--session-timeout-ms", type=int, default=10000, help="run: classic protocol only")
    parser.add_argument("--shutdown-delay-ms", type=int, default=0, help="run: keep consuming this long after SIGTERM")
    parser.add_argument("--commit-interval-ms", type=int, default=1000, help="assign-commit: between commits")
    parser.add_argument("--rate", type=float, default=10, help="stream: records per second")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--timestamp-start", type=int, help="timestamp (ms) of the first produced record")
    parser.add_argument("--timestamp-step", type=int, default=1000)
    parser.add_argument("--partition", type=int, help="produce every record to this partition")
    parser.add_argument("--value-bytes", type=int, default=0, help="produce: pad values to this size, in large batches")
    parser.add_argument("--partitions", type=int, default=1, help="commit: partitions 0 to N - 1")
    parser.add_argument("--client-id", default="kgo-test-member")
    parser.add_argument("--instance-id", help="group.instance.id: a static member")
    parser.add_argument("--expect-partitions", type=int)
    parser.add_argument("--group")
    parser.add_argument("--offset", type=int, help="txn-commit: the offset to commit; assign-commit: the first one")
    parser.add_argument("--transactional-id", help="txn-commit: the producer's transactional.id")
    parser.add_argument("--abort", action="store_true", help="txn-commit, txn-produce: abort instead of commit")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="txn-commit: after sending the offsets (and --count records to --partition), print"
        ' {"open": true} and keep the transaction open until SIGTERM, then commit it (or --abort)',
    )
    parser.add_argument("--output-topic", help="txn-transform: where the transformed records go")
    parser.add_argument("--batch", type=int, default=10, help="txn-transform: most records per transaction")
    parser.add_argument("--isolation", choices=["read_uncommitted", "read_committed"], default="read_uncommitted")
    parser.add_argument("--protocol", choices=["classic", "consumer", "share"], default="classic")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument(
        "--security-protocol", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], default="PLAINTEXT"
    )
    parser.add_argument("--sasl-mechanism", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    parser.add_argument("--sasl-username")
    parser.add_argument("--ca", help="CA certificate (PEM) to verify the broker with")
    parser.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--key", help="the client certificate's private key (PEM)")
    args = parser.parse_args()
    if args.command not in ("produce", "idempotent-produce", "stream", "txn-produce") and not args.group:
        parser.error(f"{args.command} needs --group")
    if args.command == "run" and not args.topics:
        parser.error("run needs --topics")
    if args.command != "run" and not args.topic:
        parser.error(f"{args.command} needs --topic")
    {
        "produce": produce,
        "idempotent-produce": idempotent_produce,
        "consume": consume,
        "member": member,
        "run": run,
        "txn-commit": txn_commit,
        "txn-produce": txn_produce,
        "assign-commit": assign_commit,
        "commit": commit,
        "stream": stream,
        "txn-transform": txn_transform,
        "read-all": read_all,
    }[args.command](args)


if __name__ == "__main__":
    main()
