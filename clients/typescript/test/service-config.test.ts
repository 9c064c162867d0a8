import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ServerError, createServer } from "nice-grpc";
import type { CallContext, Server, ServiceImplementation } from "nice-grpc";

import { ChannelCredentials, SocialGraphError, Status, connect } from "../src";
import type { GetCountsResponse } from "../src";
import { SocialGraphServiceDefinition } from "../src/gen/socialgraph/v1/social_graph";

// A SocialGraphService whose GetCounts fails with UNAVAILABLE `failures`
// times, or, with hang set, answers only when the call is cancelled.
const graph = { failures: 0, attempts: 0, hang: false };

async function getCounts(_: unknown, context: CallContext): Promise<GetCountsResponse> {
  graph.attempts += 1;
  if (graph.hang) {
    await new Promise((done) => context.signal.addEventListener("abort", done));
  }
  if (graph.failures-- > 0) {
    throw new ServerError(Status.UNAVAILABLE, "database unreachable");
  }
  return { counts: [] };
}

let server: Server;
let address: string;

before(async () => {
  server = createServer();
  const unimplemented = async () => {
    throw new ServerError(Status.UNIMPLEMENTED, "not in this test");
  };
  const implementation = new Proxy({}, { get: (_, name) => (name === "getCounts" ? getCounts : unimplemented) });
  server.add(SocialGraphServiceDefinition, implementation as ServiceImplementation<SocialGraphServiceDefinition>);
  address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
});

after(async () => {
  await server?.shutdown();
});

async function callWith(failures: number, hang = false): Promise<unknown> {
  Object.assign(graph, { failures, attempts: 0, hang });
  const client = connect(address, ChannelCredentials.createInsecure());
  try {
    return await client.graph.getCounts({ userIds: [] });
  } catch (error) {
    return error;
  } finally {
    client.close();
  }
}

test("the service config retries UNAVAILABLE", async () => {
  const result = await callWith(3);
  assert.ok(!(result instanceof Error), `failed: ${result}`);
  assert.equal(graph.attempts, 4);
});

test("the service config gives up after four attempts", async () => {
  const result = await callWith(10);
  assert.ok(result instanceof SocialGraphError);
  assert.equal(result.code, Status.UNAVAILABLE);
  assert.equal(graph.attempts, 4);
});

test("the service config sets a default deadline", { timeout: 30_000 }, async () => {
  const started = Date.now();
  const result = await callWith(0, true);
  assert.ok(result instanceof SocialGraphError);
  assert.equal(result.code, Status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - started >= 9_000, `gave up after ${Date.now() - started} ms`);
});
