import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * ReadTopic BOOTSTRAP TOPIC ISOLATION [TIMEOUT_S]: a Java consumer (kafka-clients, no group: assign()) with
 * isolation.level ISOLATION (read_committed or read_uncommitted) that reads every partition of TOPIC from the
 * beginning to its end as of the start (endOffsets: the last stable offset for read_committed) and prints one line
 * {"count": N, "values": [...], "keys": [...], "end_offsets": {...}}. Exits non-zero if the end is not reached
 * within TIMEOUT_S (default 60) seconds.
 */
public final class ReadTopic {
    private ReadTopic() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String isolation = args[2];
        int timeoutSeconds = args.length > 3 ? Integer.parseInt(args[3]) : 60;
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(info -> new TopicPartition(topic, info.partition()))
                    .collect(Collectors.toList());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            List<String> values = new ArrayList<>();
            List<String> keys = new ArrayList<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(timeoutSeconds).toNanos();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : partitions) {
                    if (consumer.position(tp, Duration.ofSeconds(30)) < ends.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    Map<String, Long> positions = new HashMap<>();
                    for (TopicPartition tp : partitions) {
                        positions.put(tp.toString(), consumer.position(tp));
                    }
                    System.err.println("ReadTopic: end not reached within " + timeoutSeconds + " s: positions "
                            + positions + ", ends " + ends + ", read " + values.size());
                    System.exit(1);
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                    keys.add(r.key());
                }
            }
            Map<String, Long> endOffsets = new HashMap<>();
            ends.forEach((tp, o) -> endOffsets.put(String.valueOf(tp.partition()), o));
            Json.print("count", values.size(), "values", values, "keys", keys, "end_offsets", endOffsets);
        }
    }
}
