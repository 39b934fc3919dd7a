import { describe, expect, it } from "vitest";
import {
  commandForReport,
  MAX_COMMAND_CHARS,
  MAX_LINE_CHARS,
  outputTailForReport,
} from "../../agent/lib/report-text.ts";
import { redactSecrets, Secret } from "../../agent/lib/secret.ts";

describe("hook commands and output in error messages (logs, hub)", () => {
  it("cap a command line from a label at MAX_COMMAND_CHARS", () => {
    const shown = commandForReport(["sh", "-c", `echo ${"x".repeat(10_000)}`]);
    expect(shown.length).toBeLessThanOrEqual(MAX_COMMAND_CHARS);
    expect(shown.startsWith('["sh","-c","echo xxx')).toBe(true);
  });

  it("quote only the last three non-empty lines of output, each capped", () => {
    const output = `${Array.from({ length: 1000 }, (_, i) => `line ${i} ${"y".repeat(5000)}`).join("\n")}\n\n`;
    const tail = outputTailForReport(output);
    const lines = tail.split(" | ");
    expect(lines.map((l) => l.slice(0, 9))).toEqual(["line 997 ", "line 998 ", "line 999 "]);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(MAX_LINE_CHARS);
    expect(tail.length).toBeLessThan(3 * MAX_LINE_CHARS + 10);
  });

  it("strip control characters, so output cannot forge a log line or a terminal escape", () => {
    expect(outputTailForReport("ok\u001b[31mred\u0000\ndone\rover")).toBe("ok [31mred | done over");
  });

  it("never carry a secret this process holds (the token, the hub credential), from the command or the output", () => {
    const token = new Secret("6f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
    const hub = new Secret("hub-credential-value");
    const output = `env:\nPVE_TOKEN=${token.reveal()}\nHUB=${hub.reveal()} and again ${token.reveal()}`;
    const tail = outputTailForReport(output);
    expect(tail).toBe("env: | PVE_TOKEN=[redacted] | HUB=[redacted] and again [redacted]");
    expect(commandForReport(["curl", "-H", `Authorization: ${token.reveal()}`])).toBe(
      '["curl","-H","Authorization: [redacted]"]',
    );
    // A secret cut by the line cap cannot leak its head either: redaction runs before the cap.
    expect(outputTailForReport(`${"z".repeat(MAX_LINE_CHARS - 5)}${token.reveal()}`)).not.toContain("6f1c2");
  });

  it("leave short values alone: a one-letter 'secret' must not redact every word", () => {
    new Secret("ab");
    expect(redactSecrets("abc about")).toBe("abc about");
  });
});
