import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A transactional Java producer (kafka-clients) for the integration tests. Prints JSON lines.
 *
 * <pre>
 * TxnProducer commit  BOOTSTRAP TOPIC TXN_ID COUNT PREFIX   N records (key-i / PREFIX-i) in one transaction, committed
 * TxnProducer abort   BOOTSTRAP TOPIC TXN_ID COUNT PREFIX   the same, aborted
 * TxnProducer fence   BOOTSTRAP TOPIC TXN_ID COUNT PREFIX   producer A opens a transaction with COUNT records
 *     (PREFIX-a-i); producer B (same transactional.id) calls initTransactions; A tries to commit (expected to fail
 *     with ProducerFencedException); then B commits COUNT records (PREFIX-b-i).
 * TxnProducer fence-send ...   the same, but A first sends one more record after B's initTransactions (that send
 *     and A's commit are expected to fail).
 * TxnProducer hold    BOOTSTRAP TOPIC TXN_ID COUNT PREFIX RELEASE_FILE   opens a transaction with COUNT records,
 *     prints {"open": true, ...}, waits until RELEASE_FILE exists, then commits
 * </pre>
 *
 * Every blocking call is bounded (max.block.ms, request and delivery timeouts), so a broker that does not answer
 * makes this exit non-zero with the exception rather than hang.
 */
public final class TxnProducer {
    private TxnProducer() {}

    static KafkaProducer<String, String> producer(String bootstrap, String txnId, String clientId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        return new KafkaProducer<>(p);
    }

    static List<Future<RecordMetadata>> send(
            KafkaProducer<String, String> producer, String topic, int count, String prefix) {
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            sent.add(producer.send(new ProducerRecord<>(topic, 0, "key-" + i, prefix + "-" + i)));
        }
        return sent;
    }

    static List<Long> await(List<Future<RecordMetadata>> sent) throws Exception {
        List<Long> offsets = new ArrayList<>();
        for (Future<RecordMetadata> f : sent) {
            offsets.add(f.get(60, TimeUnit.SECONDS).offset());
        }
        return offsets;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: TxnProducer commit|abort|fence|fence-send|hold BOOTSTRAP TOPIC TXN_ID COUNT PREFIX [RELEASE_FILE]");
            System.exit(2);
        }
        String mode = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        String txnId = args[3];
        int count = Integer.parseInt(args[4]);
        String prefix = args.length > 5 ? args[5] : "value";
        switch (mode) {
            case "commit", "abort" -> oneTransaction(bootstrap, topic, txnId, count, prefix, mode.equals("abort"));
            case "fence" -> fence(bootstrap, topic, txnId, count, prefix, false);
            case "fence-send" -> fence(bootstrap, topic, txnId, count, prefix, true);
            case "hold" -> hold(bootstrap, topic, txnId, count, prefix, Path.of(args[6]));
            default -> {
                System.err.println("unknown mode " + mode);
                System.exit(2);
            }
        }
    }

    static void oneTransaction(String bootstrap, String topic, String txnId, int count, String prefix, boolean abort)
            throws Exception {
        try (KafkaProducer<String, String> producer = producer(bootstrap, txnId, "kgo-test-txn-producer")) {
            producer.initTransactions();
            producer.beginTransaction();
            List<Long> offsets = await(send(producer, topic, count, prefix));
            if (abort) {
                producer.abortTransaction();
            } else {
                producer.commitTransaction();
            }
            Json.print("produced", count, abort ? "aborted" : "committed", true, "offsets", offsets);
        }
    }

    static void hold(String bootstrap, String topic, String txnId, int count, String prefix, Path release)
            throws Exception {
        try (KafkaProducer<String, String> producer = producer(bootstrap, txnId, "kgo-test-txn-holder")) {
            producer.initTransactions();
            producer.beginTransaction();
            List<Long> offsets = await(send(producer, topic, count, prefix));
            Json.print("open", true, "produced", count, "offsets", offsets);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (!Files.exists(release)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("not released within 120 s: " + release);
                }
                Thread.sleep(50);
            }
            producer.commitTransaction();
            Json.print("committed", true, "produced", count);
        }
    }

    static void fence(String bootstrap, String topic, String txnId, int count, String prefix, boolean lateSend)
            throws Exception {
        KafkaProducer<String, String> a = producer(bootstrap, txnId, "kgo-test-producer-a");
        a.initTransactions();
        a.beginTransaction();
        List<Long> aOffsets = await(send(a, topic, count, prefix + "-a"));
        Json.print("a_open", true, "produced", count, "offsets", aOffsets);

        KafkaProducer<String, String> b = producer(bootstrap, txnId, "kgo-test-producer-b");
        b.initTransactions();
        Json.print("b_initialized", true);

        // A, fenced, tries to go on: (a send, then) a commit. Each outcome is reported as it happened.
        if (lateSend) {
            try {
                RecordMetadata m = a.send(new ProducerRecord<>(topic, 0, "key-late", prefix + "-a-late"))
                        .get(60, TimeUnit.SECONDS);
                Json.print("a_send", "ok", "offset", m.offset());
            } catch (Exception e) {
                Json.print("a_send", "failed", "errors", Json.chain(e));
            }
        }
        try {
            a.commitTransaction();
            Json.print("a_commit", "ok");
        } catch (Exception e) {
            Json.print("a_commit", "failed", "errors", Json.chain(e));
        }
        a.close(java.time.Duration.ofSeconds(10));

        b.beginTransaction();
        List<Long> bOffsets = await(send(b, topic, count, prefix + "-b"));
        b.commitTransaction();
        Json.print("b_committed", true, "produced", count, "offsets", bOffsets);
        b.close(java.time.Duration.ofSeconds(10));
    }
}
