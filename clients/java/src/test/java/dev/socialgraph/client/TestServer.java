package dev.socialgraph.client;

import dev.socialgraph.v1.GetCountsRequest;
import io.grpc.InsecureChannelCredentials;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A `socialgraph serve` process for the tests: a SQLite file in a temporary directory, a free
 * port, and a limit of three connection requests per hour so a refusal is reachable.
 * SOCIALGRAPH_SERVER names the command.
 */
final class TestServer implements AutoCloseable {
  private final Process process;
  private final Path directory;
  private final Path log;
  final String address;

  private TestServer(Process process, Path directory, Path log, String address) {
    this.process = process;
    this.directory = directory;
    this.log = log;
    this.address = address;
  }

  static TestServer start() throws Exception {
    String command = System.getenv("SOCIALGRAPH_SERVER");
    if (command == null || command.isEmpty()) {
      command = Path.of("../../.venv/bin/socialgraph").toAbsolutePath().normalize().toString();
    }
    Path directory = Files.createTempDirectory("socialgraph-java-client");
    Path log = directory.resolve("server.log");
    String address = "127.0.0.1:" + freePort();
    Process process =
        new ProcessBuilder(
                command,
                "serve",
                "--listen",
                address,
                "--database-url",
                "sqlite:///" + directory.resolve("graph.db"),
                "--rate-limits",
                "3/1h")
            .redirectErrorStream(true)
            .redirectOutput(log.toFile())
            .start();
    TestServer server = new TestServer(process, directory, log, address);
    try {
      server.waitServing(30_000);
    } catch (Exception e) {
      server.close();
      throw e;
    }
    return server;
  }

  private void waitServing(long timeoutMillis) throws Exception {
    long until = System.currentTimeMillis() + timeoutMillis;
    try (SocialGraphClient client =
        SocialGraphClient.connect(address, InsecureChannelCredentials.create())) {
      for (; ; ) {
        try {
          client
              .graph()
              .withDeadlineAfter(1, TimeUnit.SECONDS)
              .getCounts(
                  GetCountsRequest.newBuilder()
                      .addUserIds("00000000-0000-4000-8000-000000000000")
                      .build());
          return;
        } catch (StatusRuntimeException e) {
          if (System.currentTimeMillis() > until || !process.isAlive()) {
            throw new IllegalStateException(
                "server did not start: " + e + "\n" + Files.readString(log), e);
          }
          Thread.sleep(100);
        }
      }
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return socket.getLocalPort();
    }
  }

  @Override
  public void close() throws Exception {
    process.destroy();
    if (!process.waitFor(15, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
    }
    try (Stream<Path> paths = Files.walk(directory)) {
      paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }
}
