import { CloseCode, shouldReconnect } from "@felhom/protocol";
import { type BackoffPolicy, hardDelayMs, phasedDelayMs } from "./backoff.ts";

/** Why a socket ended (or never opened). */
export type LinkDrop =
  /** The hub (or the network stack, 1006) closed the socket with this code. */
  | { kind: "closed"; code: number; reason: string }
  /** The hub answered the upgrade with a non-101 HTTP status. */
  | { kind: "http-rejected"; status: number }
  /** DNS, TCP, TLS, or any other transport failure before or after the upgrade. */
  | { kind: "network"; message: string }
  /** The agent gave up on a socket that stopped moving (upgrade, welcome, pong or ack deadline). */
  | { kind: "stalled"; what: string }
  /**
   * The agent closed the socket with `code` over a frame it must not act on (a welcome whose position
   * would leave it no seqs). Retried with backoff: the hub may be fixed meanwhile, and each attempt is cheap.
   */
  | { kind: "refused"; code: number; what: string }
  /** Nothing was dialled: the credential or CA file could not be read, or there is no identity yet. */
  | { kind: "local"; message: string };

export type ReconnectDecision =
  | { action: "retry"; delayMs: number }
  /** The hub said the credential is not good: wait long, and say so once. */
  | { action: "auth-rejected"; delayMs: number }
  /** The hub said retrying cannot help (protocol version, our bug): wait very long, say so once. */
  | { action: "fatal"; delayMs: number };

export interface ReconnectPolicy {
  backoff: BackoffPolicy;
  /** Nominal wait after an auth rejection (jittered between half and all of it). */
  authRejectedMs: number;
  /** Nominal wait after a fatal close code. */
  fatalMs: number;
}

/**
 * The one place that decides what a drop means. Auth rejections come in two shapes (HTTP 401/403 on the
 * upgrade, or close 4401/4403 after it) and both back off hard: a revoked agent must not become a
 * reconnect storm against its hub. Other fatal close codes come from `shouldReconnect` in protocol/, and
 * even those are retried after `fatalMs`, so that one mistake on the hub does not strand a fleet until
 * someone restarts every agent. Everything else, including closes we do not know, is a normal retry.
 */
export function decideReconnect(
  drop: LinkDrop,
  attempt: number,
  policy: ReconnectPolicy,
  random: () => number,
  /** The streak's backoff phase in [0, 1) (see `phasedDelayMs`). */
  phase: number,
): ReconnectDecision {
  if (isAuthRejection(drop))
    return { action: "auth-rejected", delayMs: hardDelayMs(policy.authRejectedMs, random) };
  if (drop.kind === "closed" && !shouldReconnect(drop.code)) {
    return { action: "fatal", delayMs: hardDelayMs(policy.fatalMs, random) };
  }
  return { action: "retry", delayMs: phasedDelayMs(attempt, policy.backoff, phase) };
}

function isAuthRejection(drop: LinkDrop): boolean {
  if (drop.kind === "http-rejected") return drop.status === 401 || drop.status === 403;
  if (drop.kind === "closed")
    return drop.code === CloseCode.Unauthorized || drop.code === CloseCode.Forbidden;
  return false;
}

/** One line for the log, naming the drop without any secret. */
export function describeDrop(drop: LinkDrop): string {
  switch (drop.kind) {
    case "closed":
      return `closed with ${drop.code}${drop.reason ? ` (${drop.reason})` : ""}`;
    case "http-rejected":
      return `upgrade rejected with HTTP ${drop.status}`;
    case "network":
      return `network error: ${drop.message}`;
    case "stalled":
      return `stalled: ${drop.what}`;
    case "refused":
      return `closed by the agent with ${drop.code}: ${drop.what}`;
    case "local":
      return drop.message;
  }
}
