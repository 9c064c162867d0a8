import { ClientError, Metadata, Status } from "nice-grpc-common";
import type { CallOptions, ClientMiddlewareCall } from "nice-grpc-common";

import { ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details";
import { ErrorReason, errorReasonFromJSON } from "./gen/socialgraph/v1/error_reason";
import { Status as RpcStatus } from "./gen/google/rpc/status";

/** The ErrorInfo domain of every error the service raises. */
export const DOMAIN = "socialgraph.v1";

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";
const RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo";

/** A failed call, decoded. Thrown by the clients `connect` returns. */
export class SocialGraphError extends ClientError {
  constructor(
    path: string,
    code: Status,
    details: string,
    /**
     * The ErrorInfo reason as an ErrorReason constant (ErrorReason.BLOCKED...);
     * ERROR_REASON_UNSPECIFIED when the error did not come from the service (a
     * deadline, a connection that could not be made) or names a reason this
     * client does not know yet.
     */
    readonly reason: ErrorReason,
    /** The ErrorInfo reason string as sent; empty without one. */
    readonly reasonName: string,
    /** The ErrorInfo domain: DOMAIN for the service's own errors. */
    readonly domain: string,
    /**
     * The ErrorInfo metadata: "field" for INVALID_ARGUMENT, "user_id" and
     * "window" or "limit" for RESOURCE_EXHAUSTED.
     */
    readonly metadata: Readonly<Record<string, string>>,
    /**
     * Milliseconds to wait before trying again, from RetryInfo or, failing
     * that, the retry-after trailer; undefined when the service named none.
     */
    readonly retryAfterMs: number | undefined,
  ) {
    super(path, code, details);
    this.name = "SocialGraphError";
  }
}

/**
 * Decodes any error of a call into a SocialGraphError. Pass the call's
 * trailer (the `onTrailer` call option) to read retry-after from it when the
 * status carries no RetryInfo; the clients `connect` returns do both.
 */
export function decodeError(error: unknown, trailer?: Metadata): SocialGraphError {
  if (error instanceof SocialGraphError) {
    return error;
  }
  const path = error instanceof ClientError ? error.path : "";
  const code = error instanceof ClientError ? error.code : Status.UNKNOWN;
  const details = error instanceof ClientError ? error.details : String(error);
  let info: ErrorInfo | undefined;
  let retryAfterMs: number | undefined;
  const statusBytes = trailer?.get("grpc-status-details-bin");
  if (statusBytes instanceof Uint8Array) {
    for (const detail of RpcStatus.decode(statusBytes).details) {
      if (detail.typeUrl === ERROR_INFO && info === undefined) {
        info = ErrorInfo.decode(detail.value);
      } else if (detail.typeUrl === RETRY_INFO) {
        const delay = RetryInfo.decode(detail.value).retryDelay;
        if (delay !== undefined) {
          retryAfterMs = delay.seconds * 1000 + Math.round(delay.nanos / 1e6);
        }
      }
    }
  }
  const header = trailer?.get("retry-after");
  if (retryAfterMs === undefined && typeof header === "string" && /^\d+$/.test(header) && Number(header) > 0) {
    retryAfterMs = Number(header) * 1000;
  }
  const reasonName = info?.reason ?? "";
  const reason = errorReasonFromJSON(reasonName);
  return new SocialGraphError(
    path,
    code,
    details,
    reason === ErrorReason.UNRECOGNIZED ? ErrorReason.ERROR_REASON_UNSPECIFIED : reason,
    reasonName,
    info?.domain ?? "",
    { ...info?.metadata },
    retryAfterMs,
  );
}

/** Client middleware that throws every failed call as a SocialGraphError. */
export async function* errorMiddleware<Request, Response>(
  call: ClientMiddlewareCall<Request, Response>,
  options: CallOptions,
) {
  let trailer: Metadata | undefined;
  const { onTrailer } = options;
  try {
    return yield* call.next(call.request, {
      ...options,
      onTrailer(received) {
        trailer = received;
        onTrailer?.(received);
      },
    });
  } catch (error) {
    throw decodeError(error, trailer);
  }
}
