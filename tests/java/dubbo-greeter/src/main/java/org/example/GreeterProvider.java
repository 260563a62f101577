package org.example;

import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.apache.dubbo.common.URL;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;

import sun.misc.Signal;

/**
 * Exports org.example.Greeter (version 1.0.0 by default) over `dubbo` (Hessian2) and `tri`
 * (Triple, wrapper form), registered at interface level in ZooKeeper, so it appears under
 * /dubbo/org.example.Greeter/providers as two URLs.
 *
 * <p>Dubbo binds all interfaces and registers the machine's first non-loopback address
 * (it refuses a loopback host, even from DUBBO_IP_TO_BIND), so the URLs carry that address.
 *
 * <p>Prints one `exported URL` line per protocol, then `ready`. On SIGTERM it stops Dubbo
 * (unregistering both URLs and closing its ZooKeeper session), prints `stopped` and exits 0;
 * when that takes longer than --stop-timeout (ZooKeeper unreachable), it prints
 * `stop timed out` and exits 1.
 */
public final class GreeterProvider {
    private static final String USAGE = "GreeterProvider --registry zookeeper://HOST:PORT"
            + " [--dubbo-port 20880] [--tri-port 50051] [--version 1.0.0]"
            + " [--name java] [--timeout MS] [--application NAME]"
            + " [--session-timeout MS] [--stop-timeout 15000]"
            + " (--registry defaults to -Ddubbo.registry.address)";

    private GreeterProvider() {}

    public static void main(String[] args) throws InterruptedException {
        Options options = Options.parse(args, USAGE);
        String registry = options.get("registry", System.getProperty("dubbo.registry.address"));
        if (registry == null || !options.positional.isEmpty()) {
            Options.fail(registry == null ? "no registry address" : "unexpected " + options.positional, USAGE);
        }
        Options.prepareDubbo();
        // Graceful shutdown waits up to this long for calls in flight (default 10 s).
        if (System.getProperty("dubbo.service.shutdown.wait") == null) {
            System.setProperty("dubbo.service.shutdown.wait", "2000");
        }

        ApplicationConfig application = new ApplicationConfig(options.get("application", "java-greeter-provider"));
        application.setRegisterMode("interface");
        application.setQosEnable(false);

        RegistryConfig registryConfig = new RegistryConfig(registry);
        registryConfig.setUseAsConfigCenter(false);
        registryConfig.setUseAsMetadataCenter(false);
        if (options.has("session-timeout")) {
            // Dubbo's default ZooKeeper session is 60 s: a killed provider's nodes stay that long.
            registryConfig.setSession(options.intValue("session-timeout", 60000, USAGE));
        }

        ProtocolConfig dubbo = new ProtocolConfig("dubbo", options.intValue("dubbo-port", 20880, USAGE));
        ProtocolConfig tri = new ProtocolConfig("tri", options.intValue("tri-port", 50051, USAGE));

        ServiceConfig<Greeter> service = new ServiceConfig<>();
        service.setInterface(Greeter.class);
        service.setRef(new GreeterImpl(options.get("name", "java")));
        service.setVersion(options.get("version", "1.0.0"));
        service.setProtocols(List.of(dubbo, tri));
        if (options.has("timeout")) {
            service.setTimeout(options.intValue("timeout", 0, USAGE));
        }

        DubboBootstrap bootstrap = DubboBootstrap.getInstance()
                .application(application)
                .registry(registryConfig)
                .protocols(List.of(dubbo, tri))
                .service(service);
        // Stopping happens here, not in Dubbo's shutdown hook, so that `stopped` means the
        // URLs are unregistered and the exit status is 0.
        int stopTimeout = options.intValue("stop-timeout", 15000, USAGE);
        // Unregistering retries for minutes while ZooKeeper is unreachable: give up after
        // --stop-timeout, say so, and exit 1 (the nodes then go with the session).
        Signal.handle(new Signal("TERM"), signal -> Options.stopAndExit(bootstrap, stopTimeout, "stopped"));
        bootstrap.start();
        for (URL url : service.getExportedUrls()) {
            System.out.println("exported " + url.toFullString());
        }
        System.out.println("ready");
        System.out.flush();
        // Not bootstrap.await(): it returns as soon as Dubbo stops, and main returning could
        // end the JVM before the handler prints `stopped`. The handler ends the process.
        new CountDownLatch(1).await();
    }
}
