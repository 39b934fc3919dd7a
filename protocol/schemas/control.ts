import { z } from "zod";
import { FRAME_ERROR_CODES } from "../error-codes.ts";
import { id, message, seq, seqOrZero, timestamp } from "./common.ts";

export const ackMessage = z.object({
  type: z.literal("ack"),
  /** Cumulative: every event with seq <= this is stored by the hub (or was declared lost by a gap). */
  seq: seqOrZero,
});

export const pingMessage = z.object({ type: z.literal("ping"), id, at: timestamp });

/** `id` repeats the ping's id; `at` is when the pong was sent. */
export const pongMessage = z.object({ type: z.literal("pong"), id, at: timestamp });

export const errorMessage = z.object({
  type: z.literal("error"),
  code: z.enum(FRAME_ERROR_CODES),
  message,
  /** What is known about the rejected frame, so the sender can find its bug. */
  ref: z
    .object({
      type: z.string().max(64).optional(),
      id: id.optional(),
      seq: seq.optional(),
    })
    .optional(),
});
