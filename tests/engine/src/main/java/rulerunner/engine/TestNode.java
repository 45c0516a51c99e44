package rulerunner.engine;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

/**
 * One OpenSearch node for rule-runner's tests, started in-process without the distribution.
 *
 * <p>Usage: {@code TestNode <data-dir>}. Prints {@code ENGINE_URL=http://127.0.0.1:<port>} on
 * stdout once the node answers HTTP, then runs until its standard input closes: the test
 * process holds the other end, so the node goes away with it even after a crash or kill -9.
 *
 * <p>It subclasses {@link Node} (not the test framework's classes, which would switch on the
 * security manager and jar-hell checks) only to hand the modules over as classpath plugins.
 */
public final class TestNode extends Node {

    private TestNode(Environment environment) {
        super(environment,
                List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, MapperExtrasPlugin.class,
                        ReindexPlugin.class),
                true);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: TestNode <data-dir>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.createDirectories(home.resolve("config"));

        Settings settings = Settings.builder()
                .put("cluster.name", "rule-runner-tests")
                .put("node.name", "rule-runner-test-node")
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                // 0: the operating system picks a free port; the bound one is printed below.
                .put("http.port", "0")
                .put("transport.port", "0")
                .put("http.type", "netty4")
                .put("transport.type", "netty4")
                // Test machines run with little free disk; the watermarks would block writes.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                // Tests create and delete indices freely, and name patterns in deletes.
                .put("action.destructive_requires_name", false)
                .put("search.max_buckets", 65536)
                .build();

        Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings, java.util.Map.of(), home.resolve("config"), () -> "rule-runner-test-node");
        TestNode node = new TestNode(environment);
        node.start();

        TransportAddress http = node.injector().getInstance(HttpServerTransport.class)
                .boundAddress().publishAddress();
        System.out.println("ENGINE_URL=http://127.0.0.1:" + http.getPort());
        System.out.flush();

        waitForStdinToClose();
        node.close();
        node.awaitClose(30, TimeUnit.SECONDS);
        System.exit(0);
    }

    private static void waitForStdinToClose() {
        InputStream in = System.in;
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) >= 0) {
                // Anything written is ignored: only the end of the stream matters.
            }
        } catch (IOException closed) {
            // A broken pipe means the same as an end of stream: the owner is gone.
        }
    }
}
