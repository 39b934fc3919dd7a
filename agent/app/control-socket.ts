import { chmod, rm } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { backupMode } from "@felhom/protocol";
import { z } from "zod";
import type { BackupMode, BackupOutcome } from "../backup/backup-types.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import type { OperationEvent } from "../operation/operation-deps.ts";
import { type Operation, operationKind } from "../operation/operation-lock.ts";
import { statePaths } from "../state/paths.ts";
import { daemonRunning } from "./daemon-lock.ts";

/**
 * The operator's CLI and the daemon on one guest: when the daemon runs, `felhom-guest backup` asks it
 * (over a root-only unix socket in the state dir) instead of running the backup itself, so that the hub
 * sees every backup — its phases, its result — whoever started it. Newline-delimited JSON, validated on
 * both ends; one request per connection.
 */

const request = z.object({ op: z.literal("backup"), mode: backupMode });
/**
 * A daemon of agent 0.1.0 answered busy as `{backupId, mode, kind}`. During an upgrade dpkg unpacks the new
 * CLI seconds before postinst restarts the daemon, so the CLI may still be talking to the old one: read its
 * answer as the holder it names, as the operation lock reads the old lock file.
 */
function legacyBusy(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  const r = v as Record<string, unknown>;
  if (r.type !== "busy" || "holder" in r || typeof r.backupId !== "string") return v;
  const kind = r.kind ?? "backup";
  return {
    type: "busy",
    holder: { kind, operationId: r.backupId, ...(kind === "backup" ? { mode: r.mode } : {}) },
  };
}

const reply = z.preprocess(
  legacyBusy,
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("started"), backupId: z.string() }),
    z.object({
      type: z.literal("busy"),
      holder: z.object({ kind: operationKind, operationId: z.string(), mode: backupMode.optional() }),
    }),
    z.object({
      type: z.literal("event"),
      event: z.custom<OperationEvent>((v) => typeof v === "object" && v !== null),
    }),
    z.object({
      type: z.literal("outcome"),
      outcome: z.custom<BackupOutcome>((v) => typeof v === "object" && v !== null && "ok" in v),
    }),
    z.object({ type: z.literal("error"), message: z.string() }),
  ]),
);
type Reply = z.infer<typeof reply>;

function jsonOrUndefined(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

export interface ControlHandlers {
  /** Starts a backup (or reports the running one), streaming its events to `onEvent`. */
  backup(
    mode: BackupMode,
    onEvent: (e: OperationEvent) => void,
  ): Promise<
    { started: true; backupId: string; done: Promise<BackupOutcome> } | { started: false; holder: Operation }
  >;
}

export async function serveControl(
  stateDir: string,
  handlers: ControlHandlers,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  const path = statePaths(stateDir).controlSocket;
  await rm(path, { force: true }); // a socket left by a killed daemon
  const server = createServer((socket) => void handle(socket));
  const send = (socket: Socket, r: Reply) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(r)}\n`);
  };
  async function handle(socket: Socket): Promise<void> {
    socket.on("error", () => {}); // the CLI went away (Ctrl-C); the backup goes on regardless
    const lines = createInterface({ input: socket });
    for await (const line of lines) {
      const parsed = request.safeParse(jsonOrUndefined(line));
      if (!parsed.success) {
        send(socket, { type: "error", message: "not a control request" });
        socket.end();
        return;
      }
      try {
        const ticket = await handlers.backup(parsed.data.mode, (event) =>
          send(socket, { type: "event", event }),
        );
        if (!ticket.started) {
          send(socket, { type: "busy", holder: ticket.holder });
        } else {
          send(socket, { type: "started", backupId: ticket.backupId });
          send(socket, { type: "outcome", outcome: await ticket.done });
        }
      } catch (err) {
        send(socket, { type: "error", message: describeError(err) });
      }
      socket.end();
      return;
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  log.debug({ path }, "control socket listening");
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        void rm(path, { force: true });
      }),
  };
}

function daemonGone(backupId: string, why: string): AgentError {
  return new AgentError(
    "daemon_gone",
    `lost the daemon during backup ${backupId || "(not started)"} (${why})`,
    {
      hint: "the daemon finishes or reports the backup itself (a stop-mode backup takes the whole guest down, the agent reports after the boot): see felhom-guest status",
    },
  );
}

function controlSocketMissing(stateDir: string, pid: string): AgentError {
  return new AgentError(
    "daemon_unreachable",
    `the daemon (pid ${pid}) runs for ${stateDir} but does not answer on ${statePaths(stateDir).controlSocket}; not running a backup beside it`,
    { hint: "restart it (systemctl restart felhom-guest), then try again" },
  );
}

export type DelegatedBackup =
  | { kind: "no-daemon" }
  | { kind: "busy"; holder: Operation }
  | { kind: "done"; backupId: string; outcome: BackupOutcome };

/** Asks the daemon to run the backup; `no-daemon` when none listens (then the CLI runs it itself). */
export function backupViaDaemon(
  stateDir: string,
  mode: BackupMode,
  onEvent: (e: OperationEvent) => void,
): Promise<DelegatedBackup> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(statePaths(stateDir).controlSocket);
    let backupId = "";
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      socket.end();
    };
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (!settled && backupId === "" && (err.code === "ENOENT" || err.code === "ECONNREFUSED")) {
        // Nothing listens; that is "no daemon" only if no daemon holds the state dir's lock (a socket
        // deleted beside a live daemon must not make this process run a backup the hub never hears of).
        settled = true;
        socket.destroy();
        daemonRunning(stateDir).then(
          (daemon) =>
            daemon ? reject(controlSocketMissing(stateDir, daemon.pid)) : resolve({ kind: "no-daemon" }),
          reject,
        );
      } else finish(() => reject(daemonGone(backupId, err.message)));
    });
    socket.once("connect", () => socket.write(`${JSON.stringify({ op: "backup", mode })}\n`));
    const lines = createInterface({ input: socket });
    lines.on("error", () => {}); // the socket's own error handler above decides
    lines.on("line", (line) => {
      const parsed = reply.safeParse(jsonOrUndefined(line));
      if (!parsed.success)
        return finish(() =>
          reject(
            new AgentError("control_protocol", "the daemon sent an unreadable control reply", {
              hint: "are the CLI and the daemon the same version? restart the daemon after an upgrade",
            }),
          ),
        );
      const r = parsed.data;
      if (r.type === "started") backupId = r.backupId;
      else if (r.type === "event") onEvent(r.event);
      else if (r.type === "busy") finish(() => resolve({ kind: "busy", holder: r.holder as Operation }));
      else if (r.type === "outcome") finish(() => resolve({ kind: "done", backupId, outcome: r.outcome }));
      else finish(() => reject(new AgentError("daemon_refused", `the daemon refused: ${r.message}`)));
    });
    socket.once("close", () => finish(() => reject(daemonGone(backupId, "connection closed"))));
  });
}
