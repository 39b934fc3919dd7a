import {
  AGENT_TO_HUB_TYPES,
  HUB_TO_AGENT_TYPES,
  MESSAGE_TYPES,
  parseAgentToHub,
  parseHubToAgent,
  parseMessage,
  stringifyMessage,
} from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { messages } from "./examples.ts";

describe("valid messages", () => {
  it("the examples cover every message type", () => {
    expect(new Set(messages.map((m) => m.type))).toEqual(new Set(MESSAGE_TYPES));
  });

  it.each(messages)("$label survives stringify then parse unchanged", ({ message }) => {
    const parsed = parseMessage(stringifyMessage(message));
    expect(parsed).toEqual({ ok: true, message });
  });

  it.each(messages)(
    "$label is accepted by exactly the directions that may receive it",
    ({ type, message }) => {
      const text = stringifyMessage(message);
      expect(parseHubToAgent(text).ok).toBe((HUB_TO_AGENT_TYPES as readonly string[]).includes(type));
      expect(parseAgentToHub(text).ok).toBe((AGENT_TO_HUB_TYPES as readonly string[]).includes(type));
    },
  );

  it("parses a frame delivered as a Buffer, an ArrayBuffer or a list of Buffer fragments the same as text", () => {
    const text = stringifyMessage(messages[0]!.message);
    const buf = Buffer.from(text);
    const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const fragments = [buf.subarray(0, 10), buf.subarray(10)];
    for (const raw of [buf, arrayBuffer, fragments]) {
      expect(parseMessage(raw, false)).toEqual({ ok: true, message: messages[0]!.message });
    }
  });

  it("drops unknown fields at any level on receive, and never sends them", () => {
    const hello = messages.find((m) => m.type === "hello")!.message;
    const extended = {
      ...hello,
      futureField: 1,
      agent: { ...(hello as { agent: object }).agent, extra: "x" },
    };
    const parsed = parseMessage(JSON.stringify(extended));
    expect(parsed).toEqual({ ok: true, message: hello });
    expect(JSON.parse(stringifyMessage(extended as typeof hello))).toEqual(hello);
  });
});
