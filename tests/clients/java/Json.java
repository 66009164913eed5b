import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Minimal JSON output for the test clients: one object per line on stdout, flushed at once. */
final class Json {
    private Json() {}

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    static String value(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Number || v instanceof Boolean) {
            return v.toString();
        }
        if (v instanceof Map<?, ?> m) {
            List<String> parts = new ArrayList<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                parts.add(quote(String.valueOf(e.getKey())) + ": " + value(e.getValue()));
            }
            return "{" + String.join(", ", parts) + "}";
        }
        if (v instanceof Iterable<?> it) {
            List<String> parts = new ArrayList<>();
            for (Object o : it) {
                parts.add(value(o));
            }
            return "[" + String.join(", ", parts) + "]";
        }
        return quote(v.toString());
    }

    /** Prints {k1: v1, k2: v2, ...} as one line. */
    static void print(Object... keyValues) {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i + 1 < keyValues.length; i += 2) {
            m.put((String) keyValues[i], keyValues[i + 1]);
        }
        synchronized (System.out) {
            System.out.println(value(m));
            System.out.flush();
        }
    }

    /** The exception and its causes, outermost first, as "Class: message" strings. */
    static List<String> chain(Throwable t) {
        List<String> out = new ArrayList<>();
        for (Throwable c = t; c != null && out.size() < 8; c = c.getCause()) {
            out.add(c.getClass().getName() + ": " + c.getMessage());
        }
        return out;
    }
}
