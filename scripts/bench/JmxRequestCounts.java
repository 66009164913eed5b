// The broker's own request counters for `make bench` (benches/lag_scan.rs): attaches to a running broker JVM by
// pid (the Attach API starts its local JMX agent, so the broker needs no JMX port), prints {"jmx_url":"..."},
// then for every line read on stdin prints one JSON line with the Count of every
// kafka.network:type=RequestMetrics,name=RequestsPerSec,request=API[,version=V] meter, summed per API:
// {"ApiVersions":12,"Metadata":40,...}. The differences of two such lines are the requests the broker received
// in between. Fetch is reported per version ("Fetch@v12"), as the broker's own metadata-log Fetches share its name. `org.apache.kafka.tools.JmxTool --jmx-url URL` reads the same meters (the bench checks that once).
//
//   java -cp 'target/bench-java:libs/*' JmxRequestCounts BROKER_PID

import com.sun.tools.attach.VirtualMachine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public final class JmxRequestCounts {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: JmxRequestCounts BROKER_PID");
            System.exit(2);
        }
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String url = vm.startLocalManagementAgent();
        vm.detach();
        System.out.println("{\"jmx_url\":\"" + url + "\"}");
        System.out.flush();
        ObjectName pattern = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(url))) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            while (in.readLine() != null) {
                Map<String, Long> counts = new TreeMap<>();
                for (ObjectName name : server.queryNames(pattern, null)) {
                    String request = name.getKeyProperty("request");
                    if (request == null) {
                        continue;
                    }
                    // Fetch is also the KRaft metadata log's API (topic ids, v13+): keep its versions apart so
                    // that a client's Fetch by topic name (v4-v12) can be counted (see benches/common delta).
                    String version = name.getKeyProperty("version");
                    if (request.equals("Fetch") && version != null) {
                        request = "Fetch@v" + version;
                    }
                    long count = ((Number) server.getAttribute(name, "Count")).longValue();
                    counts.merge(request, count, Long::sum);
                }
                StringBuilder line = new StringBuilder("{");
                for (Map.Entry<String, Long> e : counts.entrySet()) {
                    if (line.length() > 1) {
                        line.append(',');
                    }
                    line.append('"').append(e.getKey()).append("\":").append(e.getValue());
                }
                System.out.println(line.append('}'));
                System.out.flush();
            }
        }
    }
}
