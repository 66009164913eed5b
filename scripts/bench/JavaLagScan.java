// The Java AdminClient at its best for `make bench` (benches/lag_scan.rs): the lag of every group of a cluster
// with one listGroups, one listConsumerGroupOffsets(Map) carrying every group (a batched FindCoordinator and one
// OffsetFetch per coordinator) and one listOffsets for every partition (one ListOffsets per leader).
//
// Compiled at bench time against the harness classpath (javac -d target/bench-java -cp 'libs/*' ...).
//
//   java -cp 'target/bench-java:libs/*' JavaLagScan BOOTSTRAP           one scan, prints one JSON line, exits
//   java -cp 'target/bench-java:libs/*' JavaLagScan BOOTSTRAP --serve   one Admin for the process; for every
//       line read on stdin one scan and one JSON line on stdout (warm scans); exits at the end of stdin
//
// A JSON line: {"total_lag":N,"groups":G,"partitions":P,"wall_us":W,"cpu_us":C} where W and C are the scan's wall
// and process CPU time (the CPU of every thread of the JVM, JIT and GC included).

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

public final class JavaLagScan {
    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: JavaLagScan BOOTSTRAP [--serve]");
            System.exit(2);
        }
        boolean serve = args.length > 1 && args[1].equals("--serve");
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "java-lag-scan");
        try (Admin admin = Admin.create(props)) {
            if (!serve) {
                System.out.println(scan(admin));
                return;
            }
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            while (in.readLine() != null) {
                System.out.println(scan(admin));
                System.out.flush();
            }
        }
    }

    static String scan(Admin admin) throws Exception {
        long wall0 = System.nanoTime();
        long cpu0 = OS.getProcessCpuTime();

        Map<String, ListConsumerGroupOffsetsSpec> specs = new HashMap<>();
        for (GroupListing g : admin.listGroups().all().get()) {
            specs.put(g.groupId(), new ListConsumerGroupOffsetsSpec()); // all partitions
        }
        Map<String, Map<TopicPartition, OffsetAndMetadata>> committed =
                admin.listConsumerGroupOffsets(specs).all().get();
        Set<TopicPartition> partitions = new HashSet<>();
        for (Map<TopicPartition, OffsetAndMetadata> offsets : committed.values()) {
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                if (e.getValue() != null) {
                    partitions.add(e.getKey());
                }
            }
        }
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (TopicPartition tp : partitions) {
            latest.put(tp, OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResultInfo> ends = admin.listOffsets(latest).all().get();
        long total = 0;
        for (Map<TopicPartition, OffsetAndMetadata> offsets : committed.values()) {
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                if (e.getValue() == null) {
                    continue;
                }
                ListOffsetsResultInfo end = ends.get(e.getKey());
                if (end != null) {
                    total += Math.max(0, end.offset() - e.getValue().offset());
                }
            }
        }

        long wallUs = (System.nanoTime() - wall0) / 1000;
        long cpuUs = (OS.getProcessCpuTime() - cpu0) / 1000;
        return String.format(
                "{\"total_lag\":%d,\"groups\":%d,\"partitions\":%d,\"wall_us\":%d,\"cpu_us\":%d}",
                total, committed.size(), partitions.size(), wallUs, cpuUs);
    }
}
