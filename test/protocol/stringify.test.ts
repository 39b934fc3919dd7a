import {
  type CommandMessage,
  MAX_FRAME_BYTES,
  type Message,
  ProtocolEncodeError,
  REDACTED,
  redactSecrets,
  stringifyMessage,
} from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { messages } from "./examples.ts";

function encodeError(fn: () => unknown): ProtocolEncodeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolEncodeError) return err;
    throw err;
  }
  throw new Error("expected a ProtocolEncodeError");
}

describe("stringifyMessage", () => {
  it("refuses an outgoing message with a missing field, naming type and field", () => {
    const err = encodeError(() => stringifyMessage({ type: "ack" } as unknown as Message));
    expect(err.code).toBe("invalid_message");
    expect(err.message).toContain('"ack": seq');
    expect(err.issues.length).toBeGreaterThan(0);
  });

  it("refuses an unknown type", () => {
    expect(encodeError(() => stringifyMessage({ type: "subscribe" } as unknown as Message)).code).toBe(
      "invalid_message",
    );
  });

  it("refuses a message that would exceed the frame limit", () => {
    const big = {
      type: "result",
      id: "c-1",
      ok: true,
      name: "snapshot.list",
      data: {
        snapshots: Array.from({ length: 1_000 }, (_, i) => ({
          name: `s${i}`,
          description: "d".repeat(1_000),
          takenAt: null,
          parent: null,
        })),
      },
    } as Message;
    const err = encodeError(() => stringifyMessage(big));
    expect(err.code).toBe("frame_too_large");
    expect(err.message).toContain(String(MAX_FRAME_BYTES));
  });

  it("refuses a forbidden key inside a free-form record", () => {
    const details = JSON.parse('{"constructor":"x"}');
    const msg = {
      type: "result",
      id: "c-1",
      ok: false,
      error: { code: "internal", message: "x", retryable: false, details },
    } as Message;
    expect(encodeError(() => stringifyMessage(msg)).code).toBe("forbidden_key");
  });
});

describe("redactSecrets", () => {
  const enroll = messages.find((m) => m.label === "command enroll")!.message as CommandMessage;

  it("replaces the enroll token secret and leaves the original untouched", () => {
    const redacted = redactSecrets(enroll);
    expect(JSON.stringify(redacted)).not.toContain("s3cr3t-uuid");
    expect(redacted).toMatchObject({
      command: { params: { tokenSecret: REDACTED, tokenId: "agent-205@pve!backup" } },
    });
    expect(JSON.stringify(enroll)).toContain("s3cr3t-uuid");
  });

  it("returns messages without secrets as they are", () => {
    const ping = messages.find((m) => m.type === "ping")!.message;
    expect(redactSecrets(ping)).toBe(ping);
  });
});
