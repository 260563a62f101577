package org.example;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

import org.apache.dubbo.config.bootstrap.DubboBootstrap;

/** Command-line options of the peers: "--key value" pairs, then positional arguments. */
final class Options {
    private final Map<String, String> values = new HashMap<>();
    final List<String> positional = new ArrayList<>();

    static Options parse(String[] args, String usage) {
        Options options = new Options();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.startsWith("--") && options.positional.isEmpty()) {
                if (i + 1 >= args.length) {
                    fail("option " + arg + " needs a value", usage);
                }
                options.values.put(arg.substring(2), args[++i]);
            } else {
                options.positional.add(arg);
            }
        }
        return options;
    }

    String get(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    int intValue(String key, int fallback, String usage) {
        String value = values.get(key);
        if (value == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            fail("--" + key + " must be an integer, got '" + value + "'", usage);
            return fallback;
        }
    }

    boolean has(String key) {
        return values.containsKey(key);
    }

    static void fail(String message, String usage) {
        System.err.println("error: " + message);
        System.err.println("usage: " + usage);
        System.exit(2);
    }

    /**
     * Settings both peers need before Dubbo starts: interface-level discovery only (the
     * Rust side has no application-level discovery yet), and Dubbo's logs at WARNING on
     * stderr (JDK logging), so stdout holds only the peer's own lines.
     */
    static void prepareDubbo() {
        System.setProperty("dubbo.application.service-discovery.migration", "FORCE_INTERFACE");
        System.setProperty("dubbo.application.logger", "jdk");
        Logger root = Logger.getLogger("");
        root.setLevel(Level.WARNING);
        for (var handler : root.getHandlers()) {
            handler.setLevel(Level.WARNING);
        }
    }

    /**
     * Stops Dubbo (unregistering from ZooKeeper), prints `done` when given, and exits 0; or,
     * when stopping takes longer than timeoutMillis (Curator retries a delete for minutes while
     * ZooKeeper is unreachable), prints `stop timed out` and exits 1.
     */
    static void stopAndExit(DubboBootstrap bootstrap, int timeoutMillis, String done) {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(timeoutMillis);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("stop timed out");
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }, "stop-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        bootstrap.stop();
        if (done != null) {
            System.out.println(done);
        }
        System.out.flush();
        System.exit(0);
    }
}
