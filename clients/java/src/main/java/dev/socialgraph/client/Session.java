package dev.socialgraph.client;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import dev.socialgraph.v1.Consistency;

/**
 * Read-your-writes across calls and processes: remembers the token of the last write response
 * observed and hands out the matching {@link Consistency} for later reads. Observe responses in
 * the order their writes completed; a response with an empty token keeps the token before it.
 * Safe for concurrent use.
 */
public final class Session {
  private volatile String token;

  /** A session before any write: its reads minimize latency. */
  public Session() {
    this("");
  }

  /** Resumes a session from a token another process handed over. */
  public Session(String token) {
    this.token = token;
  }

  /**
   * Notes the {@code consistency_token} of a write response and returns the response.
   *
   * @throws IllegalArgumentException if {@code response} has no {@code consistency_token}
   */
  public <T extends Message> T observe(T response) {
    FieldDescriptor field = response.getDescriptorForType().findFieldByName("consistency_token");
    if (field == null || field.getJavaType() != FieldDescriptor.JavaType.STRING) {
      throw new IllegalArgumentException(
          response.getDescriptorForType().getFullName() + " carries no consistency_token");
    }
    String observed = (String) response.getField(field);
    if (!observed.isEmpty()) {
      token = observed;
    }
    return response;
  }

  /** The last token observed, to hand to another process. */
  public String token() {
    return token;
  }

  /** {@link SocialGraphClient#atLeastAsFresh} of the last token observed. */
  public Consistency consistency() {
    return SocialGraphClient.atLeastAsFresh(token);
  }
}
