import { z } from "zod";
import {
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PONG_TIMEOUT_MS,
  PING_INTERVAL_BOUNDS_MS,
  PONG_TIMEOUT_BOUNDS_MS,
} from "../limits.ts";
import { id, seqOrZero, shortText, timestamp } from "./common.ts";
import { identity } from "./status.ts";

/** Capabilities are open strings (command names and feature flags) so that an agent can grow them. */
const capability = z.string().regex(/^[a-z][a-z0-9._-]{0,63}$/, "must be a lower-case capability name");

export const helloMessage = z.object({
  type: z.literal("hello"),
  /** The protocol generation the agent speaks; the hub closes 4406 if it cannot. */
  protocolVersion: z.int().min(1),
  agent: z.object({
    /** Stable id generated at install, kept in the state dir (so a restored copy has its original's id). */
    id,
    version: shortText,
  }),
  identity,
  capabilities: z.array(capability).max(128),
  /** What the agent believes the hub acknowledged last; informative, `welcome.lastAckedSeq` wins. */
  lastAckedSeq: seqOrZero,
  session: z.object({
    /** Random per agent process; unchanged across reconnects of one process. */
    runId: id,
    /** true when this socket continues a run that was already welcomed (a reconnect, not a restart). */
    resume: z.boolean(),
  }),
});

export const welcomeMessage = z.object({
  type: z.literal("welcome"),
  protocolVersion: z.int().min(1),
  /** Highest contiguous seq the hub has stored for this agent (0 if none): the agent resends above it. */
  lastAckedSeq: seqOrZero,
  heartbeat: z
    .object({
      intervalMs: z.int().min(PING_INTERVAL_BOUNDS_MS.min).max(PING_INTERVAL_BOUNDS_MS.max),
      timeoutMs: z.int().min(PONG_TIMEOUT_BOUNDS_MS.min).max(PONG_TIMEOUT_BOUNDS_MS.max),
    })
    .meta({ examples: [{ intervalMs: DEFAULT_PING_INTERVAL_MS, timeoutMs: DEFAULT_PONG_TIMEOUT_MS }] }),
  serverTime: timestamp,
});
