// Golden Hessian 2.0 bytes from Caucho's reference implementation (Debian's
// libhessian-java, 4.0.38), and the check that it reads what rpc-hessian writes.
//
//   javac -cp /usr/share/java/hessian.jar -d OUT crates/rpc-hessian/tests/java/Golden.java
//   java --add-opens java.base/java.lang=ALL-UNNAMED -cp OUT:/usr/share/java/hessian.jar \
//       org.example.Golden write crates/rpc-hessian/tests/golden   # regenerate the golden files
//   java ... org.example.Golden check DIR   # read DIR/<case>.hessian (written by Rust), compare
//
// Each case is a file holding several consecutive values of one message (so class
// definitions, types and references are shared, as in a Dubbo request). The Rust
// tests (tests/golden.rs) expect exactly these values; keep both sides in step.
package org.example;

import com.caucho.hessian.io.Hessian2Input;
import com.caucho.hessian.io.Hessian2Output;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

enum Color { RED, GREEN, BLUE }

class Order implements Serializable {
    String item;
    int quantity;
    long price;
    List<String> tags;

    Order() {}

    Order(String item, int quantity, long price, List<String> tags) {
        this.item = item;
        this.quantity = quantity;
        this.price = price;
        this.tags = tags;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Order)) return false;
        Order other = (Order) o;
        return Objects.equals(item, other.item) && quantity == other.quantity && price == other.price
            && Objects.equals(tags, other.tags);
    }

    @Override
    public int hashCode() {
        return Objects.hash(item, quantity, price, tags);
    }

    @Override
    public String toString() {
        return "Order{item=" + item + ", quantity=" + quantity + ", price=" + price + ", tags=" + tags + "}";
    }
}

public class Golden {
    static String repeat(char c, int n) {
        char[] chars = new char[n];
        Arrays.fill(chars, c);
        return new String(chars);
    }

    static byte[] bytes(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (i * 7);
        return b;
    }

    /** 70000 UTF-16 units; a surrogate pair straddles the first 0x8000 chunk boundary. */
    static String longString() {
        StringBuilder sb = new StringBuilder();
        sb.append(repeat('x', 0x7fff));
        sb.append("\uD83D\uDE00"); // U+1F600 at units 0x7fff and 0x8000
        while (sb.length() < 69990) sb.append("abc\u00e9\u4e2d");
        sb.append("\uD834\uDD1E end"); // U+1D11E
        return sb.toString();
    }

    static List<String> list(String... items) {
        return new ArrayList<>(Arrays.asList(items));
    }

    static Order tea() {
        return new Order("tea", 2, 350L, list("hot", "green"));
    }

    static Order cake() {
        return new Order("cake", 1, 1_200_000_000_000L, list());
    }

    /** The cases, in file order; `exception` is only written (Rust reads it as a Value). */
    static Map<String, Object[]> cases() {
        Map<String, Object[]> c = new LinkedHashMap<>();
        c.put("null", new Object[] {null});
        c.put("bool", new Object[] {true, false});
        c.put("int", new Object[] {0, 1, -16, 47, 48, -17, -2048, 2047, 2048, -2049,
            -262144, 262143, 262144, -262145, Integer.MIN_VALUE, Integer.MAX_VALUE});
        c.put("long", new Object[] {0L, -8L, 15L, 16L, -9L, -2048L, 2047L, 2048L, -2049L,
            -262144L, 262143L, 262144L, -262145L, (long) Integer.MIN_VALUE, (long) Integer.MAX_VALUE,
            Integer.MAX_VALUE + 1L, Integer.MIN_VALUE - 1L, Long.MIN_VALUE, Long.MAX_VALUE});
        c.put("double", new Object[] {0.0, 1.0, -1.0, 127.0, -128.0, 128.0, 32767.0, -32768.0,
            32768.0, 1.5, 12.25, 0.001, 1e300, -0.0, Double.NaN, Double.POSITIVE_INFINITY,
            Double.NEGATIVE_INFINITY, Math.PI});
        c.put("string", new Object[] {"", "hello", repeat('a', 31), repeat('a', 32),
            repeat('b', 1023), repeat('b', 1024), "h\u00e9llo w\u00f6rld \u2603 \u4e2d\u6587",
            "\uD83D\uDE00 \uD834\uDD1E non-BMP"});
        c.put("string_long", new Object[] {longString()});
        c.put("binary", new Object[] {bytes(0), bytes(15), bytes(16), bytes(1023), bytes(1024)});
        c.put("binary_large", new Object[] {bytes(100_000)});
        List<String> ten = new ArrayList<>();
        for (int i = 0; i < 10; i++) ten.add("s" + i);
        c.put("list_string", new Object[] {list("a", "b", "c"), list(), ten});
        c.put("int_array", new Object[] {new int[] {1, 2, 3}, new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
            new int[0]});
        Map<String, Integer> map = new HashMap<>();
        map.put("one", 1);
        map.put("two", 2);
        map.put("three", 3);
        c.put("map", new Object[] {map});
        Order tea = tea();
        c.put("order", new Object[] {tea, cake(), tea});
        Order shared = tea();
        c.put("order_list", new Object[] {new ArrayList<>(Arrays.asList(shared, shared))});
        c.put("color", new Object[] {Color.RED, Color.GREEN, Color.RED});
        c.put("date", new Object[] {new Date(1_700_000_000_123L), new Date(1_700_000_040_000L)});
        c.put("exception", new Object[] {new RuntimeException("boom", new IllegalStateException("inner"))});
        return c;
    }

    static byte[] write(Object[] values) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Hessian2Output out = new Hessian2Output(bytes);
        for (Object v : values) out.writeObject(v);
        out.flush();
        return bytes.toByteArray();
    }

    static boolean same(Object expected, Object actual) {
        return Arrays.deepEquals(new Object[] {expected}, new Object[] {actual});
    }

    static String show(Object v) {
        String s = v == null ? "null" : v.getClass().getName() + ":" + Arrays.deepToString(new Object[] {v});
        return s.length() > 200 ? s.substring(0, 200) + "..." : s;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Golden write|check DIR");
            System.exit(2);
        }
        Path dir = Paths.get(args[1]);
        Map<String, Object[]> cases = cases();
        if (args[0].equals("write")) {
            Files.createDirectories(dir);
            for (Map.Entry<String, Object[]> e : cases.entrySet()) {
                Files.write(dir.resolve(e.getKey() + ".hessian"), write(e.getValue()));
            }
            return;
        }
        int failures = 0;
        int checked = 0;
        for (Map.Entry<String, Object[]> e : cases.entrySet()) {
            Path file = dir.resolve(e.getKey() + ".hessian");
            if (!Files.exists(file)) continue;
            checked++;
            Hessian2Input in = new Hessian2Input(new ByteArrayInputStream(Files.readAllBytes(file)));
            Object[] expected = e.getValue();
            if (e.getKey().equals("exception")) {
                // Throwable has no equals: check what a Java caller would look at.
                Object actual = in.readObject();
                boolean ok = actual instanceof RuntimeException
                    && "boom".equals(((Throwable) actual).getMessage())
                    && ((Throwable) actual).getCause() instanceof IllegalStateException
                    && "inner".equals(((Throwable) actual).getCause().getMessage());
                System.out.println((ok ? "ok " : "MISMATCH ") + "exception[0]: read " + show(actual));
                if (!ok) failures++;
                continue;
            }
            for (int i = 0; i < expected.length; i++) {
                Object actual;
                try {
                    actual = expected[i] instanceof int[] ? in.readObject(int[].class)
                        : expected[i] instanceof byte[] ? in.readObject(byte[].class)
                        : in.readObject();
                } catch (Exception ex) {
                    System.out.println("MISMATCH " + e.getKey() + "[" + i + "]: " + ex);
                    failures++;
                    break;
                }
                if (!same(expected[i], actual)) {
                    System.out.println("MISMATCH " + e.getKey() + "[" + i + "]: expected " + show(expected[i])
                        + ", read " + show(actual));
                    failures++;
                } else {
                    System.out.println("ok " + e.getKey() + "[" + i + "]");
                }
            }
        }
        System.out.println(checked + " files checked, " + failures + " mismatches");
        System.exit(failures == 0 && checked > 0 ? 0 : 1);
    }
}
