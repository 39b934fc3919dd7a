import { MAX_CLOSE_REASON_BYTES } from "./limits.ts";

/**
 * Application close codes (RFC 6455 reserves 4000–4999 for applications). `reconnect: false` marks the
 * fatal ones: trying again cannot help until something changes on one side (credential, version, a bug).
 */
export const CLOSE_CODES = {
  /**
   * The first frame was not a valid `hello`, a second `hello` came, or the hub saw traffic before it; from
   * the agent: a `welcome` it refused (a position that leaves it no seqs). `reconnect` is about receiving
   * it: after sending it, the agent reconnects with backoff.
   */
  BadHandshake: {
    code: 4400,
    reconnect: false,
    meaning: "handshake violated (no valid hello first, a second hello, or a refused welcome)",
  },
  /** The credential of the HTTP upgrade is missing, invalid or has expired during the session. */
  Unauthorized: { code: 4401, reconnect: false, meaning: "credential missing, invalid or expired" },
  Forbidden: { code: 4403, reconnect: false, meaning: "agent is known but not allowed (revoked, disabled)" },
  UnsupportedProtocol: {
    code: 4406,
    reconnect: false,
    meaning: "subprotocol not offered or protocol version not supported",
  },
  HandshakeTimeout: {
    code: 4408,
    reconnect: true,
    meaning: "no hello (or no welcome) within the handshake timeout",
  },
  /** A newer connection for the same agent id took over; the older socket is often half-open already. */
  Replaced: {
    code: 4409,
    reconnect: true,
    meaning: "a newer connection for the same agent id replaced this one",
  },
  TryLater: { code: 4429, reconnect: true, meaning: "hub overloaded; reconnect with backoff" },
  InternalError: { code: 4500, reconnect: true, meaning: "the closing side hit an internal error" },
  PeerTimeout: {
    code: 4504,
    reconnect: true,
    meaning: "no pong within the deadline, or no ack while events were outstanding",
  },
} as const;

export type CloseCodeName = keyof typeof CLOSE_CODES;

/** `CloseCode.Replaced === 4409` etc. */
export const CloseCode = Object.fromEntries(
  Object.entries(CLOSE_CODES).map(([name, { code }]) => [name, code]),
) as { readonly [K in CloseCodeName]: (typeof CLOSE_CODES)[K]["code"] };

const fatal = new Set<number>(
  Object.values(CLOSE_CODES)
    .filter((c) => !c.reconnect)
    .map((c) => c.code),
);

/**
 * Whether the agent should reconnect (with backoff and jitter) after a close with this code. Everything
 * not listed as fatal is retried, including standard codes (1000 normal, 1001 going away, 1006 abnormal,
 * 1009 too big, 1012 service restart) and codes from a newer hub we do not know: a daemon's job is to be
 * connected, so it stays disconnected only when told the attempt cannot succeed.
 */
export function shouldReconnect(closeCode: number): boolean {
  return !fatal.has(closeCode);
}

/** Clips a close reason to the 123 bytes RFC 6455 allows, without splitting a UTF-8 sequence. */
export function limitCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = "";
  let bytes = 0;
  for (const ch of reason) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > MAX_CLOSE_REASON_BYTES - 3) break;
    out += ch;
    bytes += size;
  }
  return `${out}...`;
}
