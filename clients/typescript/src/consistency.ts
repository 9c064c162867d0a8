import type { Consistency } from "./gen/socialgraph/v1/common";

/**
 * The read requirement that reflects the write whose response carried token
 * (its consistencyToken) and every write committed before it; minimizeLatency
 * when token is empty (the write's position could not be read, or there was
 * no write).
 */
export function atLeastAsFresh(token: string): Consistency {
  return token ? { atLeastAsFresh: token } : { minimizeLatency: true };
}

/** Any write response: every one carries a consistency token. */
export interface WriteResponse {
  consistencyToken: string;
}

/**
 * Read-your-writes across calls and processes: remembers the token of the
 * last write response observed and hands out the matching Consistency for
 * later reads. Observe responses in the order their writes completed; a
 * response with an empty token keeps the token before it. `new Session(token)`
 * resumes from a token another process handed over.
 */
export class Session {
  constructor(private current: string = "") {}

  /** The last token observed, to hand to another process. */
  get token(): string {
    return this.current;
  }

  /** Notes response's consistency token and returns the response. */
  observe<T extends WriteResponse>(response: T): T {
    if (response.consistencyToken) this.current = response.consistencyToken;
    return response;
  }

  /** atLeastAsFresh of the last token observed (minimizeLatency before any). */
  consistency(): Consistency {
    return atLeastAsFresh(this.current);
  }
}
