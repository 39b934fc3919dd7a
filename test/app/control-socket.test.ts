import { mkdtemp, rm, stat } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backupViaDaemon, serveControl } from "../../agent/app/control-socket.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { statePaths } from "../../agent/state/paths.ts";

let dir: string;
let close: (() => Promise<void>) | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-control-"));
});
afterEach(async () => {
  await close?.();
  close = undefined;
  await rm(dir, { recursive: true, force: true });
});

const phase = (p: string): OperationEvent => ({
  kind: "backup.phase",
  backupId: "bk-1",
  mode: "snapshot",
  phase: p as "preflight",
  trigger: { source: "cli" },
});
const outcome = {
  ok: false,
  failure: {
    backupId: "bk-1",
    mode: "snapshot",
    phase: "preflight",
    code: "x",
    message: "m",
    exitStatus: null,
    upid: null,
    logTail: [],
    stacksResumed: true,
  },
} as BackupOutcome;

describe("the CLI's control socket to the daemon", () => {
  it("answers no-daemon when nothing listens, so the CLI runs the backup itself", async () => {
    expect(await backupViaDaemon(dir, "snapshot", () => {})).toEqual({ kind: "no-daemon" });
  });

  it("streams the daemon's events for the backup and hands back its outcome; the socket is root-only", async () => {
    ({ close } = await serveControl(
      dir,
      {
        backup: async (_mode, onEvent) => {
          onEvent(phase("preflight"));
          return {
            started: true,
            backupId: "bk-1",
            done: Promise.resolve().then(() => {
              onEvent(phase("report"));
              return outcome;
            }),
          };
        },
      },
      silentLogger(),
    ));
    expect((await stat(statePaths(dir).controlSocket)).mode & 0o777).toBe(0o600);
    const events: OperationEvent[] = [];
    const r = await backupViaDaemon(dir, "snapshot", (e) => events.push(e));
    expect(r).toEqual({ kind: "done", backupId: "bk-1", outcome });
    expect(events.map((e) => (e.kind === "backup.phase" ? e.phase : e.kind))).toEqual([
      "preflight",
      "report",
    ]);
  });

  it("reports the running backup (or snapshot) instead of starting a second one", async () => {
    ({ close } = await serveControl(
      dir,
      { backup: async () => ({ started: false, holder: { kind: "snapshot", operationId: "op-1" } }) },
      silentLogger(),
    ));
    expect(await backupViaDaemon(dir, "snapshot", () => {})).toEqual({
      kind: "busy",
      holder: { kind: "snapshot", operationId: "op-1" },
    });
  });

  it("reads the busy answer of a daemon from before the upgrade (dpkg unpacks the CLI before the daemon restarts)", async () => {
    // agent 0.1.0's daemon: `{type: "busy", backupId, mode, kind}`, one line, then the connection closes.
    const server = createServer((socket) => {
      socket.once("data", () =>
        socket.end(`${JSON.stringify({ type: "busy", backupId: "bk-old", mode: "stop", kind: "backup" })}\n`),
      );
    });
    await new Promise<void>((resolve) => server.listen(statePaths(dir).controlSocket, resolve));
    close = () => new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await backupViaDaemon(dir, "snapshot", () => {})).toEqual({
      kind: "busy",
      holder: { kind: "backup", operationId: "bk-old", mode: "stop" },
    });
  });

  it("answers garbage with an error and keeps serving", async () => {
    ({ close } = await serveControl(
      dir,
      {
        backup: async () => ({
          started: false,
          holder: { kind: "backup", operationId: "bk-0", mode: "stop" },
        }),
      },
      silentLogger(),
    ));
    const answer = await new Promise<string>((resolve) => {
      const s = createConnection(statePaths(dir).controlSocket, () => s.write("{not json\n"));
      let got = "";
      s.on("data", (d) => {
        got += d;
      });
      s.on("close", () => resolve(got));
    });
    expect(JSON.parse(answer)).toEqual({ type: "error", message: "not a control request" });
    expect(await backupViaDaemon(dir, "snapshot", () => {})).toMatchObject({ kind: "busy" });
  });
});
