/** The protocol generation. Carried in the subprotocol name and in the handshake, not on every frame. */
export const PROTOCOL_VERSION = 1;

/** The WebSocket subprotocol (`Sec-WebSocket-Protocol`) the agent offers and the hub must select. */
export const SUBPROTOCOL = `felhom-guest.v${PROTOCOL_VERSION}`;

/**
 * Largest frame, in UTF-8 bytes, that `parseMessage` accepts; larger frames get an `error` reply
 * (`frame_too_large`) and the connection stays up. `stringifyMessage` refuses to produce one.
 */
export const MAX_FRAME_BYTES = 1_048_576;

/**
 * The hard cap to configure on the socket library (`ws` `maxPayload`). Above it the library closes with
 * 1009 before the frame is buffered, so a hostile peer cannot make us hold an unbounded frame in memory.
 */
export const TRANSPORT_MAX_PAYLOAD_BYTES = 4 * MAX_FRAME_BYTES;

/** Deepest nesting of objects and arrays in a frame (the top-level object is depth 1). Ours need 6. */
export const MAX_NESTING_DEPTH = 32;

/** Keys refused anywhere in a frame: they serve no purpose on the wire and enable prototype pollution. */
export const FORBIDDEN_KEYS: readonly string[] = ["__proto__", "constructor", "prototype"];

/** Longest line of text in an event (a warning, a log line, a progress line), in characters. */
export const MAX_LOG_LINE_CHARS = 1_000;

/** The close-frame reason is capped at 123 bytes by RFC 6455. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** The agent must send `hello` within this long after the socket opens, and the hub answer `welcome` as fast. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Defaults for `welcome.heartbeat`; the hub may choose within the bounds below. */
export const DEFAULT_PING_INTERVAL_MS = 25_000;
export const DEFAULT_PONG_TIMEOUT_MS = 10_000;
export const PING_INTERVAL_BOUNDS_MS = { min: 5_000, max: 300_000 } as const;
export const PONG_TIMEOUT_BOUNDS_MS = { min: 1_000, max: 60_000 } as const;

/** The hub re-sends a command (same id) when no final result arrived within this long. */
export const COMMAND_RESULT_TIMEOUT_MS = 60_000;

/** With events outstanding and no `ack` for this long, the agent treats the socket as stalled (close 4504). */
export const ACK_TIMEOUT_MS = 30_000;

/** The agent keeps the result of each command id at least this long (and at least the last 1000 ids). */
export const RESULT_RETENTION_MS = 86_400_000;

/**
 * After a fatal close (see `shouldReconnect`) an agent may still try again after this long, so that one
 * mistake on the hub does not strand a fleet until someone restarts every agent by hand.
 */
export const FATAL_RECONNECT_DELAY_MS = 3_600_000;

/**
 * The highest welcome position an agent numbers on above (2^48). An agent continues numbering above a
 * `welcome.lastAckedSeq` it never reached (a restored copy), so a position near 2^53 would leave it no
 * seqs: past `Number.MAX_SAFE_INTEGER` every new event gets the same seq. 2^48 leaves 2^53 − 2^48 seqs of
 * room after any such jump, and 2^48 events are ~9,000 years at 1,000 events/s. It is not a bound on the
 * wire: positions at or below the agent's own last seq are fine up to `Number.MAX_SAFE_INTEGER` (an ack
 * must be able to name every seq the agent assigned).
 */
export const MAX_HUB_SEQ = 2 ** 48;
