// A peer built on Apache Curator (Debian's libcurator-recipes-java 5.4) for the
// interoperability tests of tests/tests/curator.rs: the Java side of the lock and
// leader-election contract that examples/examples/lock-counter.rs and leader-job.rs
// implement in Rust. Same arguments (with --connect HOST:PORT for --registry) and the
// same stdout lines, one per event, flushed; Curator's and ZooKeeper's logs go to
// stderr at WARN.
//
//   CuratorPeer lock  --connect HOST:PORT --path P --rounds N [--hold-ms M] --counter C --name NAME
//       N times: acquire an InterProcessMutex at P; create the EPHEMERAL marker
//       C-holder with data NAME (if it exists: print `VIOLATION marker held by OTHER`,
//       exit 3); read the decimal counter C (created with "0" if missing) and write
//       value+1, conditional on the version read (a write by anyone else in between
//       is also a violation: `VIOLATION counter changed under the lock`, exit 3);
//       sleep M ms; delete the marker; release. Prints `round K counter=V` per round
//       and `rounds=N` at the end (exit 0). A lock not acquired within 30 s: exit 2.
//
//   CuratorPeer latch --connect HOST:PORT --path P --name NAME --log FILE
//       A LeaderLatch with id NAME. Prints `NAME leading` / `NAME not leading` on
//       each change (LeaderLatchListener), `leader=ID` whenever getLeader().getId()
//       changes (polled every 100 ms), and appends `NAME\n` to FILE every 100 ms
//       while hasLeadership(). On SIGTERM: stops writing, closes the latch (which
//       deletes its node), closes the client, exits 0.
//
// Exit codes: 0 done, 2 usage or ZooKeeper error, 3 mutual exclusion violated.

import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class CuratorPeer {
    /** Session timeout of the tests' ZooKeeper clients (`?session=4000` on the Rust side). */
    private static final int SESSION_MS = 4000;
    private static final int CONNECTION_MS = 4000;
    /** How long one lock acquisition may wait before the peer gives up (exit 2). */
    private static final long ACQUIRE_SECONDS = 30;

    /** stdout, flushed at every line: the tests read it as events happen. */
    private static final PrintStream OUT =
            new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

    /** The exit code of the shutdown hook: 0 after SIGTERM, or the code `fail` exits with. */
    private static volatile int exitCode = 0;

    private CuratorPeer() {}

    private static synchronized void say(String line) {
        OUT.println(line);
    }

    private static void fail(int code, String message) {
        System.err.println("CuratorPeer: " + message);
        System.err.flush();
        OUT.flush();
        exitCode = code;
        System.exit(code);
    }

    public static void main(String[] args) throws Exception {
        // Before any logger exists: slf4j-simple writes to stderr, WARN and up only.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("zookeeper.jmx.log4j.disable", "true");
        if (args.length < 1) {
            usage("no mode given");
        }
        Map<String, String> options = parse(args);
        String mode = args[0];
        try {
            switch (mode) {
                case "lock":
                    lock(options);
                    break;
                case "latch":
                    latch(options);
                    break;
                default:
                    usage("unknown mode `" + mode + "`");
            }
        } catch (InterruptedException e) {
            fail(2, "interrupted");
        } catch (Exception e) {
            fail(2, mode + " failed: " + e);
        }
    }

    private static void usage(String why) {
        fail(2, why + "\nusage: CuratorPeer lock --connect HOST:PORT --path P --rounds N [--hold-ms M] "
                + "--counter C --name NAME\n       CuratorPeer latch --connect HOST:PORT --path P --name NAME --log FILE");
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                usage("expected `--option value` at `" + args[i] + "`");
            }
            options.put(args[i].substring(2), args[i + 1]);
        }
        return options;
    }

    private static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            usage("--" + name + " is required");
        }
        return value;
    }

    private static long number(Map<String, String> options, String name, long otherwise) {
        String value = options.get(name);
        if (value == null) {
            return otherwise;
        }
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) {
            usage("--" + name + " must be a number, not `" + value + "`");
            return otherwise;
        }
    }

    private static CuratorFramework connect(Map<String, String> options) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(required(options, "connect"))
                .sessionTimeoutMs(SESSION_MS)
                .connectionTimeoutMs(CONNECTION_MS)
                .retryPolicy(new ExponentialBackoffRetry(100, 5, 1000))
                .build();
        client.start();
        if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
            fail(2, "cannot connect to ZooKeeper at " + options.get("connect") + " within 20 s");
        }
        return client;
    }

    // ---------------------------------------------------------------- lock

    private static void lock(Map<String, String> options) throws Exception {
        String path = required(options, "path");
        String counter = required(options, "counter");
        String name = required(options, "name");
        long rounds = number(options, "rounds", -1);
        long holdMs = number(options, "hold-ms", 0);
        if (rounds < 0) {
            usage("--rounds is required");
        }
        String marker = counter + "-holder";
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        CuratorFramework client = connect(options);
        InterProcessMutex mutex = new InterProcessMutex(client, path);
        for (long round = 1; round <= rounds; round++) {
            if (!mutex.acquire(ACQUIRE_SECONDS, TimeUnit.SECONDS)) {
                fail(2, "round " + round + ": lock " + path + " not acquired within " + ACQUIRE_SECONDS + " s");
            }
            try {
                try {
                    client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(marker, nameBytes);
                } catch (KeeperException.NodeExistsException e) {
                    String other = "?";
                    try {
                        other = new String(client.getData().forPath(marker), StandardCharsets.UTF_8);
                    } catch (KeeperException.NoNodeException gone) {
                        other = "(deleted meanwhile)";
                    }
                    say("VIOLATION marker held by " + other);
                    fail(3, "round " + round + ": the marker " + marker + " exists while " + name + " holds " + path);
                }
                long value = increment(client, counter);
                if (value < 0) {
                    say("VIOLATION counter changed under the lock");
                    fail(3, "round " + round + ": " + counter + " was written by someone else while " + name
                            + " held " + path);
                }
                if (holdMs > 0) {
                    Thread.sleep(holdMs);
                }
                client.delete().forPath(marker);
                say("round " + round + " counter=" + value);
            } finally {
                mutex.release();
            }
        }
        say("rounds=" + rounds);
        client.close();
        System.exit(0);
    }

    /** Adds one to the decimal counter at `counter` (created with "0"); -1 when the version changed meanwhile. */
    private static long increment(CuratorFramework client, String counter) throws Exception {
        try {
            client.create().creatingParentsIfNeeded().forPath(counter, "0".getBytes(StandardCharsets.UTF_8));
        } catch (KeeperException.NodeExistsException e) {
            // Created earlier, by us or by another peer.
        }
        Stat stat = new Stat();
        String text = new String(client.getData().storingStatIn(stat).forPath(counter), StandardCharsets.UTF_8).trim();
        long value;
        try {
            value = Long.parseLong(text) + 1;
        } catch (NumberFormatException e) {
            throw new IllegalStateException("the counter " + counter + " holds `" + text + "`, not a number");
        }
        try {
            client.setData().withVersion(stat.getVersion()).forPath(counter,
                    Long.toString(value).getBytes(StandardCharsets.UTF_8));
        } catch (KeeperException.BadVersionException e) {
            return -1;
        }
        return value;
    }

    // ---------------------------------------------------------------- latch

    private static void latch(Map<String, String> options) throws Exception {
        String path = required(options, "path");
        String name = required(options, "name");
        Path log = Paths.get(required(options, "log"));
        CuratorFramework client = connect(options);
        LeaderLatch latch = new LeaderLatch(client, path, name);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                say(name + " leading");
            }

            @Override
            public void notLeader() {
                say(name + " not leading");
            }
        });

        // SIGTERM runs the shutdown hooks: stop the job first (so nothing is written after
        // the latch node is gone and another may lead), then relinquish, then exit 0.
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.countDown();
            try {
                stopped.await(5, TimeUnit.SECONDS);
                latch.close(LeaderLatch.CloseMode.NOTIFY_LEADER);
                client.close();
            } catch (Exception e) {
                System.err.println("CuratorPeer: closing the latch failed: " + e);
            }
            OUT.flush();
            System.err.flush();
            Runtime.getRuntime().halt(exitCode);
        }, "relinquish"));

        latch.start();
        String leader = "";
        try {
            while (!stop.await(100, TimeUnit.MILLISECONDS)) {
                if (latch.hasLeadership()) {
                    Files.write(log, (name + "\n").getBytes(StandardCharsets.UTF_8),
                            StandardOpenOption.CREATE, StandardOpenOption.APPEND, StandardOpenOption.WRITE);
                }
                String seen;
                try {
                    seen = latch.getLeader().getId();
                } catch (Exception e) {
                    continue; // Disconnected, or the leader's node went away while read: poll again.
                }
                if (!seen.isEmpty() && !seen.equals(leader)) {
                    leader = seen;
                    say("leader=" + leader);
                }
            }
        } finally {
            stopped.countDown();
        }
        // The shutdown hook exits.
        Thread.currentThread().join();
    }
}
