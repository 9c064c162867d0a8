package dev.socialgraph.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import dev.socialgraph.v1.ErrorReason;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/**
 * A failed call, decoded.
 *
 * @param code the gRPC status code
 * @param message the status message, for people
 * @param reason the ErrorInfo reason as an ErrorReason constant ({@code ErrorReason.BLOCKED}...);
 *     ERROR_REASON_UNSPECIFIED when the error did not come from the service (a deadline, a
 *     connection that could not be made) or names a reason this client does not know yet
 * @param reasonName the ErrorInfo reason string as sent; empty without one
 * @param domain the ErrorInfo domain: {@link #DOMAIN} for the service's own errors
 * @param metadata the ErrorInfo metadata: "field" for INVALID_ARGUMENT, "user_id" and "window" or
 *     "limit" for RESOURCE_EXHAUSTED
 * @param retryAfter how long to wait before trying again, from RetryInfo or, failing that, the
 *     retry-after trailer; empty when the service named none
 */
public record SocialGraphError(
    Status.Code code,
    String message,
    ErrorReason reason,
    String reasonName,
    String domain,
    Map<String, String> metadata,
    Optional<Duration> retryAfter) {

  /** The ErrorInfo domain of every error the service raises. */
  public static final String DOMAIN = "socialgraph.v1";

  private static final Metadata.Key<String> RETRY_AFTER =
      Metadata.Key.of("retry-after", Metadata.ASCII_STRING_MARSHALLER);

  /** Decodes the error a call threw (a StatusRuntimeException, or anything else as UNKNOWN). */
  public static SocialGraphError from(Throwable error) {
    Status status = Status.fromThrowable(error);
    Metadata trailers = Status.trailersFromThrowable(error);
    ErrorInfo info = null;
    Duration retryAfter = null;
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any detail : details.getDetailsList()) {
        try {
          if (detail.is(ErrorInfo.class) && info == null) {
            info = detail.unpack(ErrorInfo.class);
          } else if (detail.is(RetryInfo.class)) {
            com.google.protobuf.Duration delay = detail.unpack(RetryInfo.class).getRetryDelay();
            retryAfter = Duration.ofSeconds(delay.getSeconds(), delay.getNanos());
          }
        } catch (InvalidProtocolBufferException e) {
          // A detail that does not parse tells nothing; the others still do.
        }
      }
    }
    if (retryAfter == null && trailers != null) {
      String header = trailers.get(RETRY_AFTER);
      if (header != null && header.matches("\\d+") && Long.parseLong(header) > 0) {
        retryAfter = Duration.ofSeconds(Long.parseLong(header));
      }
    }
    return new SocialGraphError(
        status.getCode(),
        status.getDescription() == null ? "" : status.getDescription(),
        reason(info == null ? "" : info.getReason()),
        info == null ? "" : info.getReason(),
        info == null ? "" : info.getDomain(),
        info == null ? Map.of() : Map.copyOf(info.getMetadataMap()),
        Optional.ofNullable(retryAfter));
  }

  private static ErrorReason reason(String name) {
    for (ErrorReason reason : ErrorReason.values()) {
      if (reason != ErrorReason.UNRECOGNIZED && reason.name().equals(name)) {
        return reason;
      }
    }
    return ErrorReason.ERROR_REASON_UNSPECIFIED;
  }
}
