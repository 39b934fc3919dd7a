import { backupViaDaemon } from "../../app/control-socket.ts";
import { type BackupMode, type BackupOutcome, isDeferred } from "../../backup/backup-types.ts";
import { recordLastBackup } from "../../backup/last-backup.ts";
import { outcomeEvent } from "../../backup/outcome-event.ts";
import type { AgentConfig } from "../../config/schema.ts";
import type { LocalFacts } from "../../identity/decide-identity.ts";
import { describeError } from "../../lib/errors.ts";
import type { Logger } from "../../log/logger.ts";
import { recordBackupHealth } from "../../metrics/textfile.ts";
import type { Operation } from "../../operation/operation-lock.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { describeOutcome, printBackupEvent, printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

export async function run({ values, loadConfig, logger, localFacts }: CommandInput): Promise<number> {
  const config = await loadConfig();
  const mode = (values.mode as string | undefined) ?? config.backup.mode;
  if (mode !== "snapshot" && mode !== "stop")
    throw new UsageError(`--mode must be snapshot or stop, not "${mode}"`);
  const json = values.json === true;
  const onEvent = json ? () => {} : printBackupEvent;
  const delegated = await backupViaDaemon(config.state_dir, mode, onEvent);
  if (delegated.kind === "busy") return busy(delegated.holder, json);
  if (delegated.kind === "done") return finish(delegated.outcome, json);
  return runHere(config, mode, json, await logger(json ? "error" : "warn"), localFacts);
}

function busy(holder: Operation, json: boolean): number {
  const { kind, operationId } = holder;
  if (json) printJson({ ok: false, running: operationId, kind });
  else if (kind === "backup")
    process.stderr.write(
      `backup ${operationId} (${holder.mode} mode) is already running; not starting another\n`,
    );
  else process.stderr.write(`${kind} ${operationId} is running; try the backup again when it has finished\n`);
  return ExitCode.busy;
}

function finish(outcome: BackupOutcome, json: boolean): number {
  if (json) printJson({ ok: outcome.ok, ...outcomeEvent(outcome) });
  else process.stdout.write(`${describeOutcome(outcome)}\n`);
  if (outcome.ok) return ExitCode.ok;
  return outcome.failure.code === "vzdump_lock_busy" || outcome.failure.code === "guest_locked"
    ? ExitCode.busy
    : ExitCode.failed;
}

/** No daemon: the backup runs in this process, with the same service and lock the daemon would use. */
async function runHere(
  config: AgentConfig,
  mode: BackupMode,
  json: boolean,
  log: Logger,
  localFacts: () => LocalFacts,
): Promise<number> {
  // Imported here: a backup the daemon runs needs neither the PVE client nor the Docker adapter in this
  // process, and they are most of the command's start-up.
  const [{ createContext }, { BackupService }] = await Promise.all([
    import("../../app/context.ts"),
    import("../../backup/backup-service.ts"),
  ]);
  const ctx = await createContext(config, log, localFacts);
  const shutdown = new AbortController();
  const onSignal = () => shutdown.abort();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const service = new BackupService(ctx.operationDeps(json ? () => {} : printBackupEvent));
    const ticket = await service.request({ mode, trigger: { source: "cli" }, signal: shutdown.signal });
    if (!ticket.started) return busy(ticket.holder, json);
    const outcome = await ticket.done;
    if (isDeferred(outcome)) {
      // A script reading --json gets an answer on stdout even when it stopped the CLI.
      if (json) printJson({ ok: false, deferred: true, ...outcomeEvent(outcome) });
      process.stderr.write(
        `backup ${ticket.backupId} interrupted by shutdown; the agent's next start follows task ${outcome.ok ? "" : outcome.failure.upid} and reports it\n`,
      );
      return ExitCode.failed;
    }
    await recordLastBackup(config.state_dir, outcome);
    await recordBackupHealth(config.state_dir, config.metrics?.textfile, outcome).catch((err) =>
      process.stderr.write(`warning: the backup health was not recorded: ${describeError(err)}\n`),
    );
    return finish(outcome, json);
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await ctx.close();
  }
}
