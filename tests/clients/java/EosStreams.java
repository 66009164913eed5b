import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;

/**
 * EosStreams BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [COUNTS] [repartition] [KEY=VALUE...]: a Kafka
 * Streams app with processing.guarantee=exactly_once_v2. Every record of INPUT goes to OUTPUT with its value
 * prefixed "out-" (same key). With COUNTS it also counts records per key (groupByKey: no repartition; a changelog
 * topic) and writes each new count to COUNTS (key, count as a decimal string); with the word `repartition` the
 * count goes through a repartition topic first (selectKey, so a second sub-topology reads it). KEY=VALUE
 * arguments are extra StreamsConfig properties that win over the defaults here, e.g. `group.protocol=streams`
 * (KIP-1071) or `processing.guarantee=at_least_once`.
 *
 * Prints {"state": "..."} on every state change ({"state": "RUNNING"} is the ready line) and
 * {"uncaught": [...]} for a stream thread's exception (the thread is then replaced). Runs until killed; SIGTERM
 * closes it cleanly.
 */
public final class EosStreams {
    private EosStreams() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String applicationId = args[1];
        String input = args[2];
        String output = args[3];
        Path stateDir = Path.of(args[4]);
        String counts = null;
        boolean repartition = false;
        Properties extra = new Properties();
        for (int i = 5; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq > 0) {
                extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            } else if (args[i].equals("repartition")) {
                repartition = true;
            } else {
                counts = args[i];
            }
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 10000);
        p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        p.putAll(extra);

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> in = builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()));
        in.mapValues(v -> "out-" + v).to(output, Produced.with(Serdes.String(), Serdes.String()));
        if (counts != null) {
            // selectKey marks the stream for repartitioning: groupByKey then writes to and reads from a topic.
            (repartition ? in.selectKey((k, v) -> k) : in).groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
                    .count()
                    .toStream()
                    .mapValues(String::valueOf)
                    .to(counts, Produced.with(Serdes.String(), Serdes.String()));
        }

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setStateListener((now, before) -> Json.print("state", now.name(), "from", before.name()));
        streams.setUncaughtExceptionHandler(e -> {
            Json.print("uncaught", Json.chain(e));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(10))));
        streams.start();
        Thread.currentThread().join();
    }
}
