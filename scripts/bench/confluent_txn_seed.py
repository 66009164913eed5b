"""Seeds the transactional layout of `benches/consumable_lag.rs` with confluent-kafka (librdkafka).

Usage: confluent_txn_seed.py BOOTSTRAP ABORTED < PARTITIONS
PARTITIONS (stdin): one partition a line, `TOPIC PARTITION RECORDS`.

One transactional producer (transactional.id `consumable-lag-bench`) writes, in one transaction spanning every
partition, RECORDS records to each partition and commits it; then, in a second transaction, ABORTED records
to each partition and aborts it. Each partition's log is then: RECORDS committed records, a COMMIT marker,
ABORTED aborted records, an ABORT marker (log end RECORDS + ABORTED + 2). Waits for every delivery report and
prints one JSON line: {"committed": N, "aborted": M}.
"""

import json
import sys

from confluent_kafka import KafkaError, Producer

TIMEOUT_S = 120


def main() -> None:
    bootstrap, aborted_per_partition = sys.argv[1], int(sys.argv[2])
    partitions = []
    for line in sys.stdin:
        if line.strip():
            topic, partition, records = line.split()
            partitions.append((topic, int(partition), int(records)))
    fatal = []

    def on_error(err):
        if err.fatal() or err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            fatal.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": "consumable-lag-bench",
            "transaction.timeout.ms": 120_000,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
            "error_cb": on_error,
        }
    )
    delivered = {"n": 0}
    failed = []

    def on_delivery(err, _msg):
        if err is None:
            delivered["n"] += 1
        elif len(failed) < 5:
            failed.append(str(err))

    def transaction(count_of, commit: bool) -> int:
        producer.begin_transaction()
        total = 0
        for topic, partition, records in partitions:
            for i in range(count_of(records)):
                while True:
                    try:
                        producer.produce(topic, value=f"record-{i}", partition=partition, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.1)
                total += 1
            producer.poll(0)
        if producer.flush(TIMEOUT_S):
            sys.exit("confluent_txn_seed: records undelivered")
        if fatal or failed:
            sys.exit(f"confluent_txn_seed: {fatal or failed}")
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)
        return total

    producer.init_transactions(TIMEOUT_S)
    committed = transaction(lambda records: records, True)
    aborted = transaction(lambda _records: aborted_per_partition, False)
    if delivered["n"] != committed + aborted:
        sys.exit(f"confluent_txn_seed: {delivered['n']} delivered of {committed + aborted}")
    print(json.dumps({"committed": committed, "aborted": aborted}), flush=True)


if __name__ == "__main__":
    main()
