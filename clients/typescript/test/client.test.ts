import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import {
  ChannelCredentials,
  ConnectionState,
  DOMAIN,
  ErrorReason,
  Metadata,
  SocialGraph,
  Session,
  SocialGraphError,
  Status,
  atLeastAsFresh,
  connect,
  decodeError,
} from "../src";
import { TestServer } from "./server";

let server: TestServer;
let client: SocialGraph;

before(async () => {
  server = await TestServer.start();
  client = connect(server.address, ChannelCredentials.createInsecure());
});

after(async () => {
  client?.close();
  await server?.stop();
});

async function refusal(call: Promise<unknown>): Promise<SocialGraphError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SocialGraphError, `not a SocialGraphError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

async function relationship(user: string, other: string) {
  const reply = await client.graph.getRelationship({ userId: user, otherUserId: other });
  assert.ok(reply.relationship);
  return reply.relationship;
}

test("follow and unfollow", async () => {
  const [alice, bob] = [randomUUID(), randomUUID()];
  const first = await client.graph.follow({ followerId: alice, followeeId: bob });
  assert.equal(first.created, true);
  assert.ok(first.since instanceof Date);
  const again = await client.graph.follow({ followerId: alice, followeeId: bob });
  assert.equal(again.created, false);
  assert.deepEqual(again.since, first.since);
  const rel = await relationship(alice, bob);
  assert.equal(rel.following, true);
  assert.equal(rel.followedBy, false);
  assert.equal((await client.graph.unfollow({ followerId: alice, followeeId: bob })).removed, true);
  assert.equal((await relationship(alice, bob)).following, false);
});

test("connect and accept", async () => {
  const [alice, bob] = [randomUUID(), randomUUID()];
  const sent = await client.graph.sendConnectionRequest({ requesterId: bob, recipientId: alice, message: "hi" });
  assert.equal(sent.state, ConnectionState.CONNECTION_STATE_PENDING);
  assert.equal(sent.created, true);
  assert.equal(sent.request?.message, "hi");
  const pending = await relationship(alice, bob);
  assert.equal(pending.incomingRequestPending, true);
  assert.equal(pending.connected, false);
  const accepted = await client.graph.acceptConnectionRequest({ recipientId: alice, requesterId: bob });
  assert.ok(accepted.connectedAt instanceof Date);
  const connected = await relationship(alice, bob);
  assert.equal(connected.connected, true);
  assert.equal(connected.incomingRequestPending, false);
  const connections = await client.graph.listConnections({ userId: alice });
  assert.deepEqual(connections.users.map((user) => user.userId), [bob]);
});

test("a block refuses a follow with its reason", async () => {
  const [alice, bob] = [randomUUID(), randomUUID()];
  await client.graph.follow({ followerId: bob, followeeId: alice });
  const blocked = await client.graph.block({ blockerId: alice, blockedId: bob, reason: "spam" });
  assert.equal(blocked.created, true);
  assert.equal(blocked.removedFollows, 1);
  const error = await refusal(client.graph.follow({ followerId: bob, followeeId: alice }));
  assert.equal(error.code, Status.PERMISSION_DENIED);
  assert.equal(error.reason, ErrorReason.BLOCKED);
  assert.equal(error.reasonName, "BLOCKED");
  assert.equal(error.domain, DOMAIN);
  assert.equal((await client.graph.canInteract({ userId: bob, otherUserId: alice })).canInteract, false);
});

test("an invalid argument decodes into its reason and field", async () => {
  const error = await refusal(client.graph.follow({ followerId: randomUUID(), followeeId: "not-a-uuid" }));
  assert.equal(error.code, Status.INVALID_ARGUMENT);
  assert.equal(error.reason, ErrorReason.INVALID_USER_ID);
  assert.equal(error.metadata.field, "followee_id");
  assert.equal(error.retryAfterMs, undefined);
});

test("paging to the end", async () => {
  const star = randomUUID();
  const followers = Array.from({ length: 7 }, () => randomUUID());
  for (const follower of followers) {
    await client.graph.follow({ followerId: follower, followeeId: star });
  }
  const seen: string[] = [];
  const pageSizes: number[] = [];
  let pageToken = "";
  do {
    const page = await client.graph.listFollowers({ userId: star, pageSize: 3, pageToken });
    pageSizes.push(page.users.length);
    seen.push(...page.users.map((user) => user.userId));
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  assert.deepEqual(pageSizes, [3, 3, 1]);
  assert.deepEqual(seen.sort(), followers.sort());
});

test("a rate-limit refusal carries its retry-after", async () => {
  const requester = randomUUID();
  for (let i = 0; i < 3; i++) {
    await client.graph.sendConnectionRequest({ requesterId: requester, recipientId: randomUUID() });
  }
  let trailer: Metadata | undefined;
  const error = await refusal(
    client.graph.sendConnectionRequest(
      { requesterId: requester, recipientId: randomUUID() },
      { onTrailer: (received) => (trailer = received) },
    ),
  );
  assert.equal(error.code, Status.RESOURCE_EXHAUSTED);
  assert.equal(error.reason, ErrorReason.RATE_LIMITED);
  assert.deepEqual(error.metadata, { user_id: requester, window: "3/1h" });
  assert.ok(error.retryAfterMs !== undefined && error.retryAfterMs > 59 * 60_000 && error.retryAfterMs <= 3_600_000,
    `retryAfterMs ${error.retryAfterMs}`);
  assert.match(String(trailer?.get("retry-after")), /^\d+$/);
});

test("retry-after falls back to the trailer", () => {
  const error = decodeError(new SocialGraphError("/x", Status.RESOURCE_EXHAUSTED, "slow down", ErrorReason.ERROR_REASON_UNSPECIFIED, "", "", {}, undefined));
  assert.equal(error.retryAfterMs, undefined);
  const fromTrailer = decodeError(new Error("slow down"), Metadata({ "retry-after": "17" }));
  assert.equal(fromTrailer.retryAfterMs, 17_000);
  assert.equal(fromTrailer.code, Status.UNKNOWN);
});

test("a deadline", async () => {
  const error = await refusal(client.graph.getCounts({ userIds: [randomUUID()] }, { deadline: new Date(Date.now() - 1) }));
  assert.equal(error.code, Status.DEADLINE_EXCEEDED);
  assert.equal(error.reason, ErrorReason.ERROR_REASON_UNSPECIFIED);
});

test("a session carries a write's token into the next reads", async () => {
  const [alice, bob] = [randomUUID(), randomUUID()];
  const session = new Session();
  assert.deepEqual(session.consistency(), { minimizeLatency: true });
  const followed = await client.graph.follow({ followerId: alice, followeeId: bob });
  assert.equal(session.observe(followed), followed);
  assert.notEqual(followed.consistencyToken, "");
  assert.deepEqual(session.consistency(), { atLeastAsFresh: followed.consistencyToken });

  const { relationship: rel } = await client.graph.getRelationship({ userId: alice, otherUserId: bob, consistency: session.consistency() });
  assert.equal(rel?.following, true);
  const { counts } = await client.graph.getCounts({ userIds: [alice, bob], consistency: session.consistency() });
  assert.deepEqual(counts.map((count) => [count.userId, count.following, count.followers]), [[alice, 1, 0], [bob, 0, 1]]);

  session.observe({ consistencyToken: "" });
  assert.equal(session.token, followed.consistencyToken);
});

test("atLeastAsFresh of an empty token minimizes latency", () => {
  assert.deepEqual(atLeastAsFresh(""), { minimizeLatency: true });
  assert.deepEqual(atLeastAsFresh("t"), { atLeastAsFresh: "t" });
  assert.deepEqual(new Session("t").consistency(), atLeastAsFresh("t"));
});

test("a malformed token decodes into its reason", async () => {
  const error = await refusal(client.graph.getCounts({ userIds: [randomUUID()], consistency: atLeastAsFresh("not-a-token") }));
  assert.equal(error.code, Status.INVALID_ARGUMENT);
  assert.equal(error.reason, ErrorReason.INVALID_CONSISTENCY_TOKEN);
});
