import {
  type FrameErrorCode,
  MAX_FRAME_BYTES,
  MAX_HUB_SEQ,
  MAX_NESTING_DEPTH,
  parseAgentToHub,
  parseHubToAgent,
  parseMessage,
  type RawFrame,
  replyToRejectedFrame,
} from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { messages } from "./examples.ts";

const example = (label: string) => structuredClone(messages.find((m) => m.label === label)!.message) as never;
const json = (value: unknown) => JSON.stringify(value);
// biome-ignore lint/suspicious/noExplicitAny: the table edits example frames at arbitrary paths
const edit = (label: string, change: (m: Record<string, any>) => void) => {
  const m = example(label);
  change(m);
  return json(m);
};
const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
const nestedInObject = (depth: number) =>
  `{"type":"ping","id":"p","at":${"[".repeat(depth)}${"]".repeat(depth)}}`;

type Case = {
  what: string;
  raw: RawFrame;
  isBinary?: boolean;
  parse?: typeof parseMessage;
  code: FrameErrorCode;
  /** Substrings the error message must contain. */
  says?: string[];
};

const cases: Case[] = [
  { what: "a frame that is not JSON", raw: "{type: ping}", code: "invalid_json" },
  { what: "an empty frame", raw: "", code: "invalid_json" },
  { what: "a binary frame", raw: Buffer.from(json(example("ping"))), isBinary: true, code: "binary_frame" },
  { what: "text that is not UTF-8", raw: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), code: "invalid_utf8" },
  { what: "a JSON array", raw: "[1,2]", code: "not_an_object" },
  { what: "JSON null", raw: "null", code: "not_an_object" },
  { what: "a JSON string", raw: '"hello"', code: "not_an_object" },
  {
    what: "a text frame one byte over the limit",
    raw: json({ type: "ping", id: "p", at: "x".repeat(MAX_FRAME_BYTES) }),
    code: "frame_too_large",
  },
  {
    what: "a frame over the limit only in UTF-8 bytes (multi-byte characters)",
    raw: `{"type":"ping","pad":"${"é".repeat(MAX_FRAME_BYTES / 2)}"}`,
    code: "frame_too_large",
  },
  {
    what: "a Buffer frame over the limit",
    raw: Buffer.alloc(MAX_FRAME_BYTES + 1, 0x20),
    code: "frame_too_large",
  },
  {
    what: "fragments that together exceed the limit",
    raw: [Buffer.alloc(MAX_FRAME_BYTES, 0x20), Buffer.from("{}")],
    code: "frame_too_large",
  },
  { what: "JSON nested 100 000 levels deep", raw: nested(100_000), code: "too_deep" },
  { what: "nesting one level over the limit", raw: nestedInObject(MAX_NESTING_DEPTH), code: "too_deep" },
  {
    what: "a __proto__ key at the top",
    raw: '{"type":"ping","id":"p","at":"2026-11-27T07:30:00Z","__proto__":{"polluted":true}}',
    code: "forbidden_key",
    says: ["__proto__"],
  },
  {
    what: "a constructor key deep inside",
    raw: edit("command backup.run", (m) => {
      m.command.params.constructor = { prototype: {} };
    }),
    code: "forbidden_key",
    says: ["command.params.constructor"],
  },
  {
    what: "a prototype key inside an array",
    raw: '{"type":"ack","seq":1,"x":[{"prototype":1}]}',
    code: "forbidden_key",
    says: ["x[0].prototype"],
  },
  { what: "a frame without type", raw: '{"id":"p"}', code: "unknown_message_type" },
  {
    what: "an unknown type",
    raw: '{"type":"subscribe","id":"s-1"}',
    code: "unknown_message_type",
    says: ["subscribe"],
  },
  { what: "a numeric type", raw: '{"type":7}', code: "unknown_message_type" },
  {
    what: "a hello sent to the agent",
    raw: json(example("hello")),
    parse: parseHubToAgent,
    code: "wrong_direction",
    says: ['"hello" is never sent to the agent'],
  },
  {
    what: "a command sent to the hub",
    raw: json(example("command backup.run")),
    parse: parseAgentToHub,
    code: "wrong_direction",
  },
  {
    what: "an unknown command name",
    raw: '{"type":"command","id":"c-1","command":{"name":"shell.exec","params":{"cmd":"rm -rf /"}}}',
    code: "unknown_command",
    says: ["shell.exec"],
  },
  {
    what: "an unknown event kind",
    raw: '{"type":"event","seq":5,"at":"2026-11-27T07:30:00Z","event":{"kind":"backup.exploded"}}',
    code: "unknown_event_kind",
  },
  {
    what: "a missing field",
    raw: edit("ack", (m) => {
      delete m.seq;
    }),
    code: "invalid_message",
    says: ['"ack"', "seq", "expected number", "received undefined"],
  },
  {
    what: "a field of the wrong type",
    raw: edit("event backup.completed", (m) => {
      m.event.sizeBytes = "big";
    }),
    code: "invalid_message",
    says: ['event "backup.completed"', "event.sizeBytes", "expected", "received string"],
  },
  {
    what: "a negative seq",
    raw: edit("event status", (m) => {
      m.seq = -1;
    }),
    code: "invalid_message",
    says: ["seq", "got number -1"],
  },
  {
    what: "a fractional ack",
    raw: '{"type":"ack","seq":1.5}',
    code: "invalid_message",
    says: ["expected int, received number 1.5"],
  },
  {
    what: "an unknown backup mode",
    raw: edit("command backup.run", (m) => {
      m.command.params.mode = "suspend";
    }),
    code: "invalid_message",
    says: ['command "backup.run"', "command.params.mode", '"snapshot"|"stop"'],
  },
  {
    what: "a reserved snapshot name",
    raw: edit("command snapshot.create", (m) => {
      m.command.params.name = "vzdump";
    }),
    code: "invalid_message",
    says: ["command.params.name"],
  },
  {
    what: "a snapshot name with an upper-case letter",
    raw: edit("command snapshot.delete", (m) => {
      m.command.params.name = "Before";
    }),
    code: "invalid_message",
  },
  {
    what: "a snapshot name of 41 characters",
    raw: edit("command snapshot.create", (m) => {
      m.command.params.name = `a${"b".repeat(40)}`;
    }),
    code: "invalid_message",
  },
  {
    what: "a snapshot name of 1 character",
    raw: edit("command snapshot.create", (m) => {
      m.command.params.name = "a";
    }),
    code: "invalid_message",
  },
  {
    what: "a command without params",
    raw: '{"type":"command","id":"c-1","command":{"name":"status.get"}}',
    code: "invalid_message",
    says: ["command.params"],
  },
  {
    what: "a phase outside the closed set",
    raw: edit("event backup.phase", (m) => {
      m.event.phase = "upload";
    }),
    code: "invalid_message",
  },
  {
    what: "a timestamp that is not RFC 3339",
    raw: edit("ping", (m) => {
      m.at = "yesterday";
    }),
    code: "invalid_message",
    says: ["at"],
  },
  {
    what: "an id with a space",
    raw: edit("pong", (m) => {
      m.id = "a b";
    }),
    code: "invalid_message",
  },
  {
    what: "a successful result whose data does not match its command",
    raw: '{"type":"result","id":"c-1","ok":true,"name":"backup.run","data":{"snapshots":[]}}',
    code: "invalid_message",
  },
  {
    what: "a failed result with an error code outside the closed set",
    raw: '{"type":"result","id":"c-1","ok":false,"error":{"code":"oops","message":"x","retryable":false}}',
    code: "invalid_message",
  },
  {
    what: "a welcome with a ping interval below the bound",
    raw: edit("welcome", (m) => {
      m.heartbeat.intervalMs = 10;
    }),
    code: "invalid_message",
  },
];

describe("malformed frames", () => {
  it.each(cases)(
    "rejects $what with $code, without throwing",
    ({ raw, isBinary, parse = parseMessage, code, says }) => {
      const result = parse(raw, isBinary);
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.error.code).toBe(code);
      for (const text of says ?? []) expect(result.error.message).toContain(text);
    },
  );

  it("never echoes the value of a string field, so a malformed secret is not written to a log", () => {
    const raw =
      '{"type":"command","id":"c-9","command":{"name":"enroll","params":{"vmid":205,"tokenId":"bad","tokenSecret":"TOPSECRET"}}}';
    const bad = raw
      .replace('"vmid":205', '"vmid":"x"')
      .replace('"tokenSecret":"TOPSECRET"', '"tokenSecret":["TOPSECRET"]');
    for (const frame of [raw, bad]) {
      const result = parseMessage(frame);
      expect(result.ok).toBe(false);
      expect(JSON.stringify(result)).not.toContain("TOPSECRET");
    }
  });
});

describe("the hub's positions", () => {
  it("accept MAX_HUB_SEQ itself in a welcome and an ack", () => {
    expect(
      parseHubToAgent(
        edit("welcome", (m) => {
          m.lastAckedSeq = MAX_HUB_SEQ;
        }),
      ),
    ).toMatchObject({ ok: true, message: { lastAckedSeq: MAX_HUB_SEQ } });
    expect(parseHubToAgent(`{"type":"ack","seq":${MAX_HUB_SEQ}}`)).toMatchObject({ ok: true });
  });
});

describe("frames that are not JSON", () => {
  const secret = "d3adbeef-1234-5678-9abc-def012345678";
  const frames = [
    `{"type":"command","tokenSecret":${secret}}`,
    `{"type":"command","tokenSecret":"${secret}"`,
    `{"type":"command","tokenSecret":"${secret}\u0001"}`,
    `{"type":"command","tokenSecret":"${secret}"} ${secret}`,
    `{"type":"command","tokenSecret":"${secret}",}`,
    `{"type":"command","tokenSecret":"${secret}\\q"}`,
    `{"type":"command","tokenSecret":tru${secret}}`,
    secret,
    `'${secret}'`,
  ];

  it.each(frames)(
    "are rejected without quoting any of the frame, so a secret in one never reaches a log: %s",
    (frame) => {
      const result = parseMessage(frame);
      expect(result).toMatchObject({ ok: false, error: { code: "invalid_json" } });
      if (result.ok) return;
      const reply = JSON.stringify(replyToRejectedFrame(result.error));
      for (const text of [result.error.message, reply]) {
        expect(text).not.toContain("d3ad");
        expect(text).not.toContain("tokenSecret");
        expect(text).toContain(`(${frame.length} characters)`);
      }
    },
  );

  it("says where the frame stopped being JSON when the parser knows", () => {
    const result = parseMessage(`{"tokenSecret":"${secret}\u0001"}`);
    expect(result).toMatchObject({
      ok: false,
      error: {
        message: `the frame is not JSON at position ${16 + secret.length} (${19 + secret.length} characters)`,
      },
    });
  });
});

describe("replies to rejected frames", () => {
  const reject = (raw: string, parse = parseMessage) => {
    const result = parse(raw);
    if (result.ok) throw new Error("expected a rejection");
    return replyToRejectedFrame(result.error);
  };

  it("answers a command with an unknown name with a failed result for its id, so the hub stops waiting", () => {
    expect(
      reject('{"type":"command","id":"c-1","command":{"name":"shell.exec","params":{}}}', parseHubToAgent),
    ).toEqual({
      type: "result",
      id: "c-1",
      ok: false,
      name: "shell.exec",
      error: { code: "unknown_command", message: expect.stringContaining("shell.exec"), retryable: false },
    });
  });

  it("answers a command with invalid params with a failed result invalid_params", () => {
    const reply = reject('{"type":"command","id":"c-2","command":{"name":"snapshot.delete","params":{}}}');
    expect(reply).toMatchObject({ type: "result", id: "c-2", ok: false, error: { code: "invalid_params" } });
  });

  it("answers an unknown type with an error frame that names the frame", () => {
    expect(reject('{"type":"subscribe","id":"s-1"}')).toEqual({
      type: "error",
      code: "unknown_message_type",
      message: expect.stringContaining("subscribe"),
      ref: { type: "subscribe", id: "s-1" },
    });
  });

  it("answers a bad event with an error frame carrying its seq", () => {
    const reply = reject('{"type":"event","seq":77,"at":"now","event":{"kind":"gap"}}');
    expect(reply).toMatchObject({ type: "error", code: "invalid_message", ref: { type: "event", seq: 77 } });
  });

  it("never answers a rejected error frame, so two peers cannot bounce errors forever", () => {
    expect(reject('{"type":"error","code":"nonsense"}')).toBeNull();
  });

  it("answers non-JSON with an error frame without ref", () => {
    expect(reject("not json")).toEqual({ type: "error", code: "invalid_json", message: expect.any(String) });
  });

  it("builds replies that are themselves valid frames", () => {
    for (const raw of [
      '{"type":"subscribe"}',
      '{"type":"command","id":"c-1","command":{"name":"x","params":{}}}',
    ]) {
      const reply = reject(raw)!;
      expect(parseMessage(JSON.stringify(reply)).ok).toBe(true);
    }
  });
});

describe("gap rules JSON Schema cannot state", () => {
  const gap = (fromSeq: number, toSeq: number, count: number, seq = 100) =>
    JSON.stringify({
      type: "event",
      seq,
      at: "2026-11-27T07:30:00Z",
      event: { kind: "gap", fromSeq, toSeq, count, kinds: [], reason: "outbox-overflow" },
    });

  it.each([
    ["a range that runs backwards", gap(20, 10, 1), "toSeq must be >= fromSeq"],
    ["a count larger than the range", gap(10, 19, 11), "count must be <= toSeq - fromSeq + 1"],
    ["a gap that covers its own seq", gap(10, 19, 5, 19), "a gap covers only seqs below its own"],
  ])("rejects %s", (_, raw, says) => {
    const result = parseMessage(raw);
    expect(result).toMatchObject({
      ok: false,
      error: { code: "invalid_message", message: expect.stringContaining(says) },
    });
  });

  it("accepts a gap whose count is smaller than its range (some events in it were sent)", () => {
    expect(parseMessage(gap(10, 19, 4)).ok).toBe(true);
  });
});

describe("input of a type the socket library never delivers", () => {
  it.each([[42], [undefined], [null], [{ length: 3 }]])("rejects %j without throwing", (raw) => {
    expect(parseMessage(raw as unknown as RawFrame)).toMatchObject({
      ok: false,
      error: { code: "binary_frame" },
    });
  });
});
