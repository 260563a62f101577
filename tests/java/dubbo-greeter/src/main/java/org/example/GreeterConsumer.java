package org.example;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import org.apache.dubbo.rpc.service.EchoService;
import org.apache.dubbo.rpc.service.GenericService;

/**
 * Calls org.example.Greeter through ZooKeeper (interface-level discovery:
 * migration=FORCE_INTERFACE) or at a direct URL, over `dubbo` or `tri`, and runs a script
 * of calls: the positional arguments (one call each), or else the lines of stdin.
 *
 * <p>Prints `ready` once the reference exists, then one line per call: `ok VALUE` or
 * `err EXCEPTION_CLASS: MESSAGE` (the message on one line). Calls:
 * <ul>
 *   <li>`hello NAME` - sayHello(NAME): `ok Hello, NAME from java`;</li>
 *   <li>`order ITEM QTY [TAG,TAG]` - placeOrder: `ok OrderId{id=N}`, or
 *       `err org.example.OrderRejected: ...` when QTY &lt;= 0;</li>
 *   <li>`sleep MS` - sleep(MS): `ok void`;</li>
 *   <li>`list a,b` - echoList (`list` alone: empty; `list -`: null): `ok [a, b]`;</li>
 *   <li>`map k=1,j=2` - echoMap (`map` alone: empty; `map -`: null): `ok {j=2, k=1}` (sorted);</li>
 *   <li>`nullable VALUE` - echoNullable (`-` is null): `ok VALUE` or `ok null`.</li>
 * </ul>
 * Answers are checked against the declared element types (a list of non-strings or a map of
 * non-Integers is an `err java.lang.ClassCastException`). Exits 0 after the script (even
 * when calls failed), 2 on bad usage, 1 when the reference cannot be created (`failed ...`:
 * no provider, unless --check false) or stopping Dubbo outlasts --stop-timeout.
 */
public final class GreeterConsumer {
    private static final String USAGE = "GreeterConsumer (--registry zookeeper://HOST:PORT | --url PROTOCOL://HOST:PORT)"
            + " [--protocol dubbo|tri] [--timeout 3000] [--retries 0] [--version 1.0.0] [--check true]"
            + " [--stop-timeout 15000] [--generic false] [CALL ...]"
            + " (CALL: 'hello NAME', 'order ITEM QTY [TAGS]', 'sleep MS', 'list a,b', 'map k=1,j=2', 'nullable -';"
            + " without CALLs, one per stdin line)";

    private GreeterConsumer() {}

    public static void main(String[] args) throws IOException {
        Options options = Options.parse(args, USAGE);
        String registry = options.get("registry", System.getProperty("dubbo.registry.address"));
        String url = options.get("url", null);
        if (registry == null && url == null) {
            Options.fail("give --registry or --url", USAGE);
        }
        String protocol = options.get("protocol", "dubbo");
        if (!protocol.equals("dubbo") && !protocol.equals("tri")) {
            Options.fail("--protocol must be dubbo or tri, got " + protocol, USAGE);
        }
        int timeout = options.intValue("timeout", 3000, USAGE);
        int retries = options.intValue("retries", 0, USAGE);
        Options.prepareDubbo();

        ApplicationConfig application = new ApplicationConfig(options.get("application", "java-greeter-consumer"));
        application.setQosEnable(false);
        application.setRegisterMode("interface");

        ReferenceConfig<Greeter> reference = new ReferenceConfig<>();
        reference.setInterface(Greeter.class);
        reference.setVersion(options.get("version", "1.0.0"));
        reference.setProtocol(protocol);
        reference.setTimeout(timeout);
        reference.setRetries(retries);
        // --check false: start without a provider (calls fail until one appears).
        reference.setCheck(Boolean.parseBoolean(options.get("check", "true")));
        if (url != null) {
            reference.setUrl(url);
        }

        DubboBootstrap bootstrap = DubboBootstrap.getInstance().application(application).reference(reference);
        // --generic true: also a GenericService reference (generic=true) for the `generic-*` calls.
        ReferenceConfig<GenericService> genericReference = null;
        if (Boolean.parseBoolean(options.get("generic", "false"))) {
            genericReference = new ReferenceConfig<>();
            genericReference.setInterface("org.example.Greeter");
            genericReference.setGeneric("true");
            genericReference.setVersion(options.get("version", "1.0.0"));
            genericReference.setProtocol(protocol);
            genericReference.setTimeout(timeout);
            genericReference.setRetries(retries);
            genericReference.setCheck(Boolean.parseBoolean(options.get("check", "true")));
            if (url != null) {
                genericReference.setUrl(url);
            }
            bootstrap.reference(genericReference);
        }
        if (registry != null) {
            RegistryConfig registryConfig = new RegistryConfig(registry);
            registryConfig.setUseAsConfigCenter(false);
            registryConfig.setUseAsMetadataCenter(false);
            bootstrap.registry(registryConfig);
        }
        Greeter greeter;
        try {
            bootstrap.start();
            greeter = reference.get();
            if (genericReference != null) {
                generic = genericReference.get();
            }
        } catch (RuntimeException e) {
            System.out.println("failed " + describe(e));
            System.out.flush();
            System.exit(1);
            return;
        }
        System.out.println("ready");
        System.out.flush();

        if (!options.positional.isEmpty()) {
            for (String call : options.positional) {
                System.out.println(run(greeter, call));
                System.out.flush();
            }
        } else {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (line.isBlank()) {
                    continue;
                }
                System.out.println(run(greeter, line));
                System.out.flush();
            }
        }
        Options.stopAndExit(bootstrap, options.intValue("stop-timeout", 15000, USAGE), null);
    }

    /** The GenericService reference of --generic true, else null. */
    static GenericService generic;

    /** Runs one call line and answers its result line. */
    static String run(Greeter greeter, String call) {
        String[] words = call.strip().split(" ", 2);
        String rest = words.length > 1 ? words[1] : "";
        try {
            switch (words[0]) {
                case "hello":
                    return "ok " + greeter.sayHello(rest);
                case "order": {
                    String[] parts = rest.split(" ");
                    if (parts.length < 2) {
                        return "err usage: order ITEM QTY [TAG,TAG]";
                    }
                    // java.util.ArrayList: Hessian2 writes it as an untyped list.
                    List<String> tags = parts.length > 2
                            ? new ArrayList<>(Arrays.asList(parts[2].split(",")))
                            : new ArrayList<>();
                    return "ok " + greeter.placeOrder(new Order(parts[0], Integer.parseInt(parts[1]), tags));
                }
                case "sleep":
                    greeter.sleep(Long.parseLong(rest.strip()));
                    return "ok void";
                case "list": {
                    List<String> answer = greeter.echoList(parseList(rest));
                    if (answer == null) {
                        return "ok null";
                    }
                    List<String> checked = new ArrayList<>();
                    for (String value : answer) {
                        checked.add(value);
                    }
                    return "ok " + checked;
                }
                case "map": {
                    Map<String, Integer> answer = greeter.echoMap(parseMap(rest));
                    if (answer == null) {
                        return "ok null";
                    }
                    TreeMap<String, Integer> sorted = new TreeMap<>();
                    for (Map.Entry<String, Integer> entry : answer.entrySet()) {
                        String key = entry.getKey();
                        Integer value = entry.getValue();
                        sorted.put(key, value);
                    }
                    return "ok " + sorted;
                }
                case "echo":
                    // Every Dubbo reference is an EchoService: `$echo` travels as a call.
                    return "ok " + ((EchoService) greeter).$echo(rest);
                case "generic-hello":
                    return "ok " + generic.$invoke("sayHello", new String[] {"java.lang.String"}, new Object[] {rest});
                case "generic-order": {
                    // A POJO argument as GenericService callers write it: a map with its class.
                    String[] parts = rest.split(" ");
                    Map<String, Object> order = new LinkedHashMap<>();
                    order.put("class", "org.example.Order");
                    order.put("item", parts[0]);
                    order.put("quantity", Integer.parseInt(parts[1]));
                    order.put("tags", new ArrayList<String>());
                    Object answer = generic.$invoke("placeOrder", new String[] {"org.example.Order"}, new Object[] {order});
                    return "ok " + (answer instanceof Map ? new TreeMap<>((Map<?, ?>) answer) : answer);
                }
                case "generic-nope":
                    return "ok " + generic.$invoke("nope", new String[0], new Object[0]);
                case "nullable":
                    return "ok " + greeter.echoNullable(rest.equals("-") ? null : rest);
                default:
                    return "err usage: unknown call '" + words[0] + "'";
            }
        } catch (Throwable e) {
            return "err " + describe(e);
        }
    }

    private static List<String> parseList(String text) {
        if (text.equals("-")) {
            return null;
        }
        return text.isEmpty() ? new ArrayList<>() : new ArrayList<>(Arrays.asList(text.split(",")));
    }

    private static Map<String, Integer> parseMap(String text) {
        if (text.equals("-")) {
            return null;
        }
        Map<String, Integer> map = new LinkedHashMap<>();
        if (!text.isEmpty()) {
            for (String pair : text.split(",")) {
                String[] kv = pair.split("=", 2);
                map.put(kv[0], kv.length > 1 ? Integer.parseInt(kv[1]) : null);
            }
        }
        return map;
    }

    /** `CLASS: MESSAGE`, the message on one line. */
    static String describe(Throwable e) {
        String message = String.valueOf(e.getMessage()).replaceAll("\\s*\\R\\s*", " | ");
        return e.getClass().getName() + ": " + message;
    }
}
