import {
  MAX_FRAME_BYTES,
  MAX_NESTING_DEPTH,
  parseHubToAgent,
  replyToRejectedFrame,
  TRANSPORT_MAX_PAYLOAD_BYTES,
} from "@felhom/protocol";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { agentDir, cleanup, clientForTest, hubForTest, phase, prng } from "./support.ts";

afterEach(cleanup);

const SEED = 20261127;
const FRAMES = 10_000;

interface Garbage {
  data: string | Buffer;
  binary: boolean;
}

/** Malformed frames of every family the protocol names, from a seed. */
function garbage(count: number, seed: number): Garbage[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const json = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: count, seed });
  const strings = fc.sample(fc.string({ maxLength: 40 }), { numRuns: count, seed: seed + 1 });
  const families: Array<(i: number) => Garbage> = [
    () => ({ data: bytes(1 + int(200)), binary: true }),
    () => ({ data: bytes(1 + int(200)), binary: false }), // text frame, usually not UTF-8
    (i) => ({ data: JSON.stringify(json[i]), binary: false }),
    (i) => ({ data: strings[i]!, binary: false }),
    (i) => ({ data: JSON.stringify({ type: strings[i] }), binary: false }),
    (i) => ({ data: JSON.stringify({ type: "command", id: `g-${i}`, command: json[i] }), binary: false }),
    (i) => ({
      data: JSON.stringify({
        type: "command",
        id: `g-${i}`,
        command: { name: "backup.run", params: { mode: json[i] } },
      }),
      binary: false,
    }),
    (i) => ({
      data: JSON.stringify({ type: "command", id: `g-${i}`, command: { name: strings[i], params: {} } }),
      binary: false,
    }),
    (i) => ({ data: JSON.stringify({ type: "ack", seq: json[i] }), binary: false }),
    (i) => ({ data: JSON.stringify({ type: ["hello", "event", "result"][i % 3], seq: 1 }), binary: false }),
    () => ({
      data: `${"[".repeat(MAX_NESTING_DEPTH + 1 + int(50))}1${"]".repeat(MAX_NESTING_DEPTH + 1)}`,
      binary: false,
    }),
    () => ({
      data: '{"type":"ping","id":"p1","at":"2026-11-27T00:00:00Z","x":{"__proto__":{"polluted":1}}}',
      binary: false,
    }),
    () => ({ data: JSON.stringify({ type: "welcome", protocolVersion: 1 }), binary: false }),
    // Valid, but a second welcome on one socket: unexpected_message.
    () => ({
      data: JSON.stringify({
        type: "welcome",
        protocolVersion: 1,
        lastAckedSeq: 0,
        heartbeat: { intervalMs: 25_000, timeoutMs: 10_000 },
        serverTime: "2026-11-27T00:00:00Z",
      }),
      binary: false,
    }),
  ];
  const out: Garbage[] = [];
  for (let i = 0; out.length < count; i++) {
    const frame = families[i % families.length]!(i);
    // Keep only frames the agent must answer: every rejected frame except `error` frames, and the
    // valid-but-unexpected second welcome. A random frame that happens to be valid is not garbage.
    const parsed = parseHubToAgent(frame.data, frame.binary);
    if (parsed.ok ? parsed.message.type !== "welcome" : replyToRejectedFrame(parsed.error) === null) continue;
    out.push(frame);
  }
  // A few frames above the protocol's limit but under the transport cap: rejected with frame_too_large.
  for (let i = 0; i < 3; i++)
    out.splice(int(out.length), 0, { data: "x".repeat(MAX_FRAME_BYTES + 1 + i), binary: false });
  return out;
}

describe("malformed frames from the hub", () => {
  it("answers 10,000 malformed frames with protocol errors on the same socket, then still delivers events and runs commands", async () => {
    const hub = await hubForTest();
    let calls = 0;
    const client = await clientForTest(hub, await agentDir(), {
      handlers: {
        "backup.run": async (params) => {
          calls++;
          return { backupId: "b-after-garbage", mode: params.mode };
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);

    const frames = garbage(FRAMES, SEED);
    for (const f of frames) hub.sendRaw(f.data, { binary: f.binary });
    await hub.waitFor(
      "one answer per malformed frame",
      () => hub.agentErrors.length + hub.results.length >= frames.length,
      120_000,
    );

    expect(hub.agentErrors.length + hub.results.length).toBe(frames.length);
    const codes = new Set([
      ...hub.agentErrors.map((e) => e.code),
      ...hub.results.map((r) => (r.ok ? "ok" : r.error.code)),
    ]);
    for (const code of [
      "binary_frame",
      "invalid_utf8",
      "invalid_json",
      "not_an_object",
      "unknown_message_type",
      "wrong_direction",
      "too_deep",
      "forbidden_key",
      "frame_too_large",
      "unexpected_message",
      "unknown_command",
      "invalid_params",
    ]) {
      expect(codes, code).toContain(code);
    }
    expect(hub.results.every((r) => !r.ok)).toBe(true);
    expect(calls).toBe(0);
    // The same socket: no reconnect was needed.
    expect(hub.attempts).toHaveLength(1);
    expect(client.state.name).toBe("connected");

    const seq = await client.emit(phase("b-after", "quiesce"));
    await hub.waitFor("the event after the garbage", () => hub.events.some((e) => e.seq === seq));
    expect(await hub.sendCommand({ name: "backup.run", params: { mode: "snapshot" } })).toMatchObject({
      ok: true,
      data: { backupId: "b-after-garbage" },
    });
    expect(calls).toBe(1);
    expect(hub.invalidFromAgent).toEqual([]);
  });

  it("drops a socket that sends a frame above the transport cap, reconnects, and keeps working", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    hub.sendRaw("y".repeat(TRANSPORT_MAX_PAYLOAD_BYTES + 1));
    await hub.waitFor("a reconnect", () => hub.attempts.length === 2 && hub.connections() === 1);
    const seq = await client.emit(phase("b-big", "resume"));
    await hub.waitFor("the event", () => hub.events.some((e) => e.seq === seq));
  });
});
