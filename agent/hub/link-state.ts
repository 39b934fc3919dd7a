import type { LinkDrop } from "./reconnect-decision.ts";

/**
 * The life of the hub link. `attempt` counts failed attempts since the last `welcome` (graphql-ws resets
 * its retry count on ack, not on socket open: a hub that accepts sockets and then drops them must keep
 * backing off).
 */
export type LinkState =
  | { name: "idle" }
  /** A socket is being opened (TCP, TLS, HTTP upgrade). */
  | { name: "connecting"; attempt: number }
  /** The socket is open and `hello` was sent; waiting for `welcome`. */
  | { name: "handshaking"; attempt: number }
  | { name: "connected"; since: number }
  /** Waiting before the next attempt. */
  | { name: "waiting"; attempt: number; lastDrop: LinkDrop }
  | { name: "stopped" };

export type LinkEvent =
  | { type: "dial" }
  | { type: "opened" }
  | { type: "welcomed"; at: number }
  | { type: "dropped"; drop: LinkDrop }
  | { type: "stop" };

export class IllegalStateError extends Error {
  constructor(state: LinkState, event: LinkEvent) {
    super(`hub link: event "${event.type}" is not allowed in state "${state.name}"`);
    this.name = "IllegalStateError";
  }
}

/** Pure: the next state, or IllegalStateError for a transition that would be a bug in the client. */
export function transition(state: LinkState, event: LinkEvent): LinkState {
  if (event.type === "stop") return { name: "stopped" };
  switch (state.name) {
    case "idle":
      if (event.type === "dial") return { name: "connecting", attempt: 0 };
      break;
    case "waiting":
      if (event.type === "dial") return { name: "connecting", attempt: state.attempt };
      break;
    case "connecting":
      if (event.type === "opened") return { name: "handshaking", attempt: state.attempt };
      if (event.type === "dropped")
        return { name: "waiting", attempt: state.attempt + 1, lastDrop: event.drop };
      break;
    case "handshaking":
      if (event.type === "welcomed") return { name: "connected", since: event.at };
      if (event.type === "dropped")
        return { name: "waiting", attempt: state.attempt + 1, lastDrop: event.drop };
      break;
    case "connected":
      if (event.type === "dropped") return { name: "waiting", attempt: 1, lastDrop: event.drop };
      break;
    case "stopped":
      break;
  }
  throw new IllegalStateError(state, event);
}

/** The attempt number to feed the backoff for the wait that follows a drop (0-based). */
export function backoffAttempt(state: Extract<LinkState, { name: "waiting" }>): number {
  return state.attempt - 1;
}
