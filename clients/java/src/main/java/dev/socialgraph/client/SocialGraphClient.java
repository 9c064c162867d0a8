package dev.socialgraph.client;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import dev.socialgraph.v1.AdminServiceGrpc;
import dev.socialgraph.v1.Consistency;
import dev.socialgraph.v1.SocialGraphServiceGrpc;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One channel to the socialgraph.v1 services, dialed with the published service config
 * (clients/service_config.json): a default deadline for every call and retries of UNAVAILABLE,
 * which the service returns only when nothing was written. Failed calls throw
 * {@link io.grpc.StatusRuntimeException}; {@link SocialGraphError#from} decodes them.
 *
 * <p>{@link #atLeastAsFresh} and {@link Session} carry consistency tokens from writes into later
 * reads.
 */
public final class SocialGraphClient implements AutoCloseable {
  private final ManagedChannel channel;

  private SocialGraphClient(ManagedChannel channel) {
    this.channel = channel;
  }

  /**
   * Connects lazily to target ("host:port" or any gRPC target) with the given credentials, e.g.
   * {@code InsecureChannelCredentials.create()} on loopback.
   */
  public static SocialGraphClient connect(String target, ChannelCredentials credentials) {
    return new SocialGraphClient(configure(Grpc.newChannelBuilder(target, credentials)).build());
  }

  /** Applies the published service config to a channel builder of the caller's. */
  public static ManagedChannelBuilder<?> configure(ManagedChannelBuilder<?> builder) {
    return builder.defaultServiceConfig(serviceConfig()).enableRetry();
  }

  /** The published service config, as ManagedChannelBuilder.defaultServiceConfig takes it. */
  public static Map<String, ?> serviceConfig() {
    try (InputStream in = SocialGraphClient.class.getResourceAsStream("service_config.json");
        Reader reader = new InputStreamReader(in, StandardCharsets.UTF_8)) {
      return new Gson().fromJson(reader, new TypeToken<Map<String, Object>>() {}.getType());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * The read requirement that reflects the write whose response carried {@code token} (its
   * consistency_token) and every write committed before it; minimize_latency when {@code token} is
   * empty (the write's position could not be read, or there was no write).
   */
  public static Consistency atLeastAsFresh(String token) {
    if (token.isEmpty()) {
      return Consistency.newBuilder().setMinimizeLatency(true).build();
    }
    return Consistency.newBuilder().setAtLeastAsFresh(token).build();
  }

  /** Blocking stub of SocialGraphService; add deadlines with withDeadlineAfter. */
  public SocialGraphServiceGrpc.SocialGraphServiceBlockingStub graph() {
    return SocialGraphServiceGrpc.newBlockingStub(channel);
  }

  /** Future stub of SocialGraphService. */
  public SocialGraphServiceGrpc.SocialGraphServiceFutureStub graphAsync() {
    return SocialGraphServiceGrpc.newFutureStub(channel);
  }

  /** Blocking stub of AdminService. */
  public AdminServiceGrpc.AdminServiceBlockingStub admin() {
    return AdminServiceGrpc.newBlockingStub(channel);
  }

  /** Future stub of AdminService. */
  public AdminServiceGrpc.AdminServiceFutureStub adminAsync() {
    return AdminServiceGrpc.newFutureStub(channel);
  }

  /** The channel, for other stubs (health, reflection). */
  public ManagedChannel channel() {
    return channel;
  }

  /** Shuts the channel down, giving calls in flight up to five seconds. */
  @Override
  public void close() throws InterruptedException {
    channel.shutdown();
    if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
      channel.shutdownNow();
    }
  }
}
