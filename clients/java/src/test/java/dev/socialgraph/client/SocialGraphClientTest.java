package dev.socialgraph.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.socialgraph.v1.AcceptConnectionRequestRequest;
import dev.socialgraph.v1.BlockRequest;
import dev.socialgraph.v1.BlockResponse;
import dev.socialgraph.v1.CanInteractRequest;
import dev.socialgraph.v1.ConnectionState;
import dev.socialgraph.v1.Consistency;
import dev.socialgraph.v1.Counts;
import dev.socialgraph.v1.ErrorReason;
import dev.socialgraph.v1.FollowRequest;
import dev.socialgraph.v1.FollowResponse;
import dev.socialgraph.v1.GetCountsRequest;
import dev.socialgraph.v1.GetRelationshipRequest;
import dev.socialgraph.v1.ListConnectionsRequest;
import dev.socialgraph.v1.ListFollowersRequest;
import dev.socialgraph.v1.ListFollowersResponse;
import dev.socialgraph.v1.RelatedUser;
import dev.socialgraph.v1.Relationship;
import dev.socialgraph.v1.SendConnectionRequestRequest;
import dev.socialgraph.v1.SendConnectionRequestResponse;
import dev.socialgraph.v1.UnfollowRequest;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class SocialGraphClientTest {
  private static TestServer server;
  private static SocialGraphClient client;

  @BeforeAll
  static void start() throws Exception {
    server = TestServer.start();
    client = SocialGraphClient.connect(server.address, InsecureChannelCredentials.create());
  }

  @AfterAll
  static void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (server != null) {
      server.close();
    }
  }

  private static String newUser() {
    return UUID.randomUUID().toString();
  }

  private static Relationship relationship(String user, String other) {
    return client
        .graph()
        .getRelationship(
            GetRelationshipRequest.newBuilder().setUserId(user).setOtherUserId(other).build())
        .getRelationship();
  }

  private static SocialGraphError refusal(Executable call) {
    return SocialGraphError.from(assertThrows(StatusRuntimeException.class, call));
  }

  private static FollowRequest follow(String follower, String followee) {
    return FollowRequest.newBuilder().setFollowerId(follower).setFolloweeId(followee).build();
  }

  @Test
  void followAndUnfollow() {
    String alice = newUser();
    String bob = newUser();
    FollowResponse first = client.graph().follow(follow(alice, bob));
    assertTrue(first.getCreated());
    assertTrue(first.hasSince());
    FollowResponse again = client.graph().follow(follow(alice, bob));
    assertFalse(again.getCreated());
    assertEquals(first.getSince(), again.getSince());
    Relationship rel = relationship(alice, bob);
    assertTrue(rel.getFollowing());
    assertFalse(rel.getFollowedBy());
    assertTrue(
        client
            .graph()
            .unfollow(UnfollowRequest.newBuilder().setFollowerId(alice).setFolloweeId(bob).build())
            .getRemoved());
    assertFalse(relationship(alice, bob).getFollowing());
  }

  @Test
  void connectAndAccept() {
    String alice = newUser();
    String bob = newUser();
    SendConnectionRequestResponse sent =
        client
            .graph()
            .sendConnectionRequest(
                SendConnectionRequestRequest.newBuilder()
                    .setRequesterId(bob)
                    .setRecipientId(alice)
                    .setMessage("hi")
                    .build());
    assertEquals(ConnectionState.CONNECTION_STATE_PENDING, sent.getState());
    assertTrue(sent.getCreated());
    assertEquals("hi", sent.getRequest().getMessage());
    Relationship pending = relationship(alice, bob);
    assertTrue(pending.getIncomingRequestPending());
    assertFalse(pending.getConnected());
    assertTrue(
        client
            .graph()
            .acceptConnectionRequest(
                AcceptConnectionRequestRequest.newBuilder()
                    .setRecipientId(alice)
                    .setRequesterId(bob)
                    .build())
            .hasConnectedAt());
    Relationship connected = relationship(alice, bob);
    assertTrue(connected.getConnected());
    assertFalse(connected.getIncomingRequestPending());
    List<RelatedUser> connections =
        client
            .graph()
            .listConnections(ListConnectionsRequest.newBuilder().setUserId(alice).build())
            .getUsersList();
    assertEquals(List.of(bob), connections.stream().map(RelatedUser::getUserId).toList());
  }

  @Test
  void blockRefusesFollowWithItsReason() {
    String alice = newUser();
    String bob = newUser();
    client.graph().follow(follow(bob, alice));
    BlockResponse blocked =
        client
            .graph()
            .block(
                BlockRequest.newBuilder()
                    .setBlockerId(alice)
                    .setBlockedId(bob)
                    .setReason("spam")
                    .build());
    assertTrue(blocked.getCreated());
    assertEquals(1, blocked.getRemovedFollows());
    SocialGraphError error = refusal(() -> client.graph().follow(follow(bob, alice)));
    assertEquals(Status.Code.PERMISSION_DENIED, error.code());
    assertEquals(ErrorReason.BLOCKED, error.reason());
    assertEquals("BLOCKED", error.reasonName());
    assertEquals(SocialGraphError.DOMAIN, error.domain());
    assertFalse(
        client
            .graph()
            .canInteract(
                CanInteractRequest.newBuilder().setUserId(bob).setOtherUserId(alice).build())
            .getCanInteract());
  }

  @Test
  void invalidArgumentDecodesIntoReasonAndField() {
    SocialGraphError error = refusal(() -> client.graph().follow(follow(newUser(), "not-a-uuid")));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals(ErrorReason.INVALID_USER_ID, error.reason());
    assertEquals("followee_id", error.metadata().get("field"));
    assertEquals(Optional.empty(), error.retryAfter());
  }

  @Test
  void pagingToTheEnd() {
    String star = newUser();
    List<String> followers = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      followers.add(newUser());
      client.graph().follow(follow(followers.get(i), star));
    }
    List<String> seen = new ArrayList<>();
    List<Integer> pageSizes = new ArrayList<>();
    String token = "";
    do {
      ListFollowersResponse page =
          client
              .graph()
              .listFollowers(
                  ListFollowersRequest.newBuilder()
                      .setUserId(star)
                      .setPageSize(3)
                      .setPageToken(token)
                      .build());
      pageSizes.add(page.getUsersCount());
      page.getUsersList().forEach(user -> seen.add(user.getUserId()));
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    assertEquals(List.of(3, 3, 1), pageSizes);
    assertEquals(followers.stream().sorted().toList(), seen.stream().sorted().toList());
  }

  @Test
  void rateLimitRefusalCarriesItsRetryAfter() {
    String requester = newUser();
    for (int i = 0; i < 3; i++) {
      client
          .graph()
          .sendConnectionRequest(
              SendConnectionRequestRequest.newBuilder()
                  .setRequesterId(requester)
                  .setRecipientId(newUser())
                  .build());
    }
    StatusRuntimeException thrown =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                client
                    .graph()
                    .sendConnectionRequest(
                        SendConnectionRequestRequest.newBuilder()
                            .setRequesterId(requester)
                            .setRecipientId(newUser())
                            .build()));
    SocialGraphError error = SocialGraphError.from(thrown);
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, error.code());
    assertEquals(ErrorReason.RATE_LIMITED, error.reason());
    assertEquals(Map.of("user_id", requester, "window", "3/1h"), error.metadata());
    Duration retryAfter = error.retryAfter().orElseThrow();
    assertTrue(
        retryAfter.compareTo(Duration.ofMinutes(59)) > 0
            && retryAfter.compareTo(Duration.ofHours(1)) <= 0,
        "retryAfter " + retryAfter);
    String header =
        thrown.getTrailers().get(Metadata.Key.of("retry-after", Metadata.ASCII_STRING_MARSHALLER));
    assertTrue(header != null && header.matches("\\d+"), "retry-after trailer " + header);
  }

  @Test
  void retryAfterFallsBackToTheTrailer() {
    Metadata trailers = new Metadata();
    trailers.put(Metadata.Key.of("retry-after", Metadata.ASCII_STRING_MARSHALLER), "17");
    SocialGraphError error =
        SocialGraphError.from(Status.RESOURCE_EXHAUSTED.asRuntimeException(trailers));
    assertEquals(Optional.of(Duration.ofSeconds(17)), error.retryAfter());
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, error.reason());
    assertEquals(Status.Code.UNKNOWN, SocialGraphError.from(new IllegalStateException()).code());
  }

  @Test
  void deadline() {
    SocialGraphError error =
        refusal(
            () ->
                client
                    .graph()
                    .withDeadlineAfter(1, TimeUnit.NANOSECONDS)
                    .getCounts(GetCountsRequest.newBuilder().addUserIds(newUser()).build()));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, error.code());
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, error.reason());
  }

  @Test
  void sessionCarriesAWritesTokenIntoTheNextReads() {
    String alice = newUser();
    String bob = newUser();
    Session session = new Session();
    assertEquals(Consistency.newBuilder().setMinimizeLatency(true).build(), session.consistency());
    FollowResponse followed = client.graph().follow(follow(alice, bob));
    assertSame(followed, session.observe(followed));
    assertFalse(followed.getConsistencyToken().isEmpty());
    assertEquals(followed.getConsistencyToken(), session.consistency().getAtLeastAsFresh());

    assertTrue(
        client
            .graph()
            .getRelationship(
                GetRelationshipRequest.newBuilder()
                    .setUserId(alice)
                    .setOtherUserId(bob)
                    .setConsistency(session.consistency())
                    .build())
            .getRelationship()
            .getFollowing());
    List<Counts> counts =
        client
            .graph()
            .getCounts(
                GetCountsRequest.newBuilder()
                    .addUserIds(alice)
                    .addUserIds(bob)
                    .setConsistency(session.consistency())
                    .build())
            .getCountsList();
    assertEquals(
        List.of(List.of(alice, 1L, 0L), List.of(bob, 0L, 1L)),
        counts.stream().map(c -> List.of(c.getUserId(), c.getFollowing(), c.getFollowers())).toList());

    session.observe(FollowResponse.getDefaultInstance());
    assertEquals(followed.getConsistencyToken(), session.token());
    assertThrows(IllegalArgumentException.class, () -> session.observe(Counts.getDefaultInstance()));
  }

  @Test
  void atLeastAsFreshOfAnEmptyTokenMinimizesLatency() {
    assertTrue(SocialGraphClient.atLeastAsFresh("").getMinimizeLatency());
    assertEquals("t", SocialGraphClient.atLeastAsFresh("t").getAtLeastAsFresh());
    assertEquals(SocialGraphClient.atLeastAsFresh("t"), new Session("t").consistency());
  }

  @Test
  void malformedTokenDecodesIntoItsReason() {
    GetCountsRequest request =
        GetCountsRequest.newBuilder()
            .addUserIds(newUser())
            .setConsistency(SocialGraphClient.atLeastAsFresh("not-a-token"))
            .build();
    SocialGraphError error = refusal(() -> client.graph().getCounts(request));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals(ErrorReason.INVALID_CONSISTENCY_TOKEN, error.reason());
  }
}
