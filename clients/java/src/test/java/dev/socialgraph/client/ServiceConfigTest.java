package dev.socialgraph.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.socialgraph.v1.GetCountsRequest;
import dev.socialgraph.v1.GetCountsResponse;
import dev.socialgraph.v1.SocialGraphServiceGrpc;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class ServiceConfigTest {
  /** Fails GetCounts with UNAVAILABLE until failures run out; records each attempt's deadline. */
  private static final class FlakyGraph extends SocialGraphServiceGrpc.SocialGraphServiceImplBase {
    final AtomicInteger failures = new AtomicInteger();
    final AtomicInteger attempts = new AtomicInteger();
    final AtomicLong deadlineMillis = new AtomicLong(-1);

    @Override
    public void getCounts(GetCountsRequest request, StreamObserver<GetCountsResponse> response) {
      attempts.incrementAndGet();
      Deadline deadline = Context.current().getDeadline();
      if (deadline != null) {
        deadlineMillis.set(deadline.timeRemaining(TimeUnit.MILLISECONDS));
      }
      if (failures.getAndDecrement() > 0) {
        response.onError(Status.UNAVAILABLE.withDescription("database unreachable").asRuntimeException());
        return;
      }
      response.onNext(GetCountsResponse.getDefaultInstance());
      response.onCompleted();
    }
  }

  private final FlakyGraph graph = new FlakyGraph();
  private Server server;
  private SocialGraphClient client;

  @BeforeEach
  void start() throws Exception {
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(graph)
            .build()
            .start();
    client =
        SocialGraphClient.connect(
            "127.0.0.1:" + server.getPort(), InsecureChannelCredentials.create());
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void retriesUnavailable() {
    graph.failures.set(3);
    client.graph().getCounts(GetCountsRequest.getDefaultInstance());
    assertEquals(4, graph.attempts.get());
  }

  @Test
  void givesUpAfterFourAttempts() {
    graph.failures.set(10);
    StatusRuntimeException error =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.graph().getCounts(GetCountsRequest.getDefaultInstance()));
    assertEquals(Status.Code.UNAVAILABLE, SocialGraphError.from(error).code());
    assertEquals(4, graph.attempts.get());
  }

  @Test
  void setsADefaultDeadline() {
    client.graph().getCounts(GetCountsRequest.getDefaultInstance());
    long remaining = graph.deadlineMillis.get();
    assertTrue(remaining > 8_000 && remaining <= 10_000, "deadline the server saw: " + remaining + " ms");
  }
}
