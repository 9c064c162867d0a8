/**
 * The Node client of the socialgraph.v1 services: ts-proto types and service
 * definitions (./gen), promise clients over @grpc/grpc-js through nice-grpc,
 * dialed with the published service config, throwing decoded errors, and a
 * Session that carries consistency tokens from writes into later reads.
 */
import { createChannel, createClientFactory } from "nice-grpc";
import type { Channel, ChannelCredentials, ChannelOptions } from "nice-grpc";
import { deadlineMiddleware } from "nice-grpc-client-middleware-deadline";
import type { DeadlineOptions } from "nice-grpc-client-middleware-deadline";

import { errorMiddleware } from "./errors";
import { AdminServiceDefinition } from "./gen/socialgraph/v1/admin";
import type { AdminServiceClient } from "./gen/socialgraph/v1/admin";
import { SocialGraphServiceDefinition } from "./gen/socialgraph/v1/social_graph";
import type { SocialGraphServiceClient } from "./gen/socialgraph/v1/social_graph";
import { serviceConfig } from "./gen/service_config";

export { Session, atLeastAsFresh } from "./consistency";
export type { WriteResponse } from "./consistency";
export { DOMAIN, SocialGraphError, decodeError, errorMiddleware } from "./errors";
export { serviceConfig } from "./gen/service_config";
export * from "./gen/socialgraph/v1/admin";
export * from "./gen/socialgraph/v1/common";
export * from "./gen/socialgraph/v1/error_reason";
export * from "./gen/socialgraph/v1/social_graph";
export { ChannelCredentials, Metadata, Status } from "nice-grpc";
export type { DeadlineOptions } from "nice-grpc-client-middleware-deadline";

/** Both services' clients on one channel. */
export interface SocialGraph {
  graph: SocialGraphServiceClient<DeadlineOptions>;
  admin: AdminServiceClient<DeadlineOptions>;
  channel: Channel;
  close(): void;
}

/**
 * Channel options that apply the published service config (clients/service_config.json):
 * a default deadline for every call and retries of UNAVAILABLE, which the
 * service returns only when nothing was written.
 */
export function channelOptions(options: ChannelOptions = {}): ChannelOptions {
  return { "grpc.service_config": JSON.stringify(serviceConfig), ...options };
}

/**
 * Connects lazily to address ("host:port"). Every call takes a `deadline`
 * option (a Date, or milliseconds from now) and throws a SocialGraphError.
 * The caller chooses the credentials, e.g. ChannelCredentials.createInsecure()
 * on loopback.
 */
export function connect(address: string, credentials: ChannelCredentials, options?: ChannelOptions): SocialGraph {
  const channel = createChannel(address, credentials, channelOptions(options));
  const factory = createClientFactory().use(deadlineMiddleware).use(errorMiddleware);
  return {
    graph: factory.create(SocialGraphServiceDefinition, channel),
    admin: factory.create(AdminServiceDefinition, channel),
    channel,
    close: () => channel.close(),
  };
}
