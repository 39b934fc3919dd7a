import {
  CLOSE_CODES,
  CloseCode,
  limitCloseReason,
  MAX_CLOSE_REASON_BYTES,
  shouldReconnect,
} from "@felhom/protocol";
import { describe, expect, it } from "vitest";

describe("close codes", () => {
  it.each([
    [CloseCode.BadHandshake, false],
    [CloseCode.Unauthorized, false],
    [CloseCode.Forbidden, false],
    [CloseCode.UnsupportedProtocol, false],
    [CloseCode.HandshakeTimeout, true],
    [CloseCode.Replaced, true],
    [CloseCode.TryLater, true],
    [CloseCode.InternalError, true],
    [CloseCode.PeerTimeout, true],
    [1000, true],
    [1001, true],
    [1006, true],
    [1009, true],
    [1012, true],
    [4999, true],
  ])("shouldReconnect(%i) is %s", (code, expected) => {
    expect(shouldReconnect(code)).toBe(expected);
  });

  it("uses only application codes 4000-4999, each once", () => {
    const codes = Object.values(CLOSE_CODES).map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code >= 4000 && code <= 4999).toBe(true);
  });

  it("keeps a short reason as it is", () => {
    expect(limitCloseReason("protocol version 2 is not supported")).toBe(
      "protocol version 2 is not supported",
    );
  });

  it("clips a long reason to 123 bytes without splitting a multi-byte character", () => {
    const clipped = limitCloseReason("é".repeat(200));
    expect(Buffer.byteLength(clipped)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(clipped.endsWith("...")).toBe(true);
    expect(clipped).not.toContain("\uFFFD");
    expect(Buffer.from(clipped).toString("utf8")).toBe(clipped);
  });
});
