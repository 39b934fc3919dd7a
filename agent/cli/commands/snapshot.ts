import { createContext } from "../../app/context.ts";
import {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  rollbackSnapshot,
} from "../../snapshot/snapshot-service.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import { SNAPSHOT_CONFIRM as CONFIRM, type CommandInput } from "./command.ts";

export async function run({
  values,
  positionals,
  loadConfig,
  logger,
  localFacts,
}: CommandInput): Promise<number> {
  const [action, name, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (action !== "list" && !name) throw new UsageError(`snapshot ${action ?? ""} needs a NAME`);
  if (!["create", "list", "delete", "rollback"].includes(action ?? "")) {
    throw new UsageError("snapshot needs one of: create, list, delete, rollback");
  }
  if (action === "rollback" && values[CONFIRM] !== true) {
    throw new UsageError(`rollback kills this guest and every stack in it; confirm with --${CONFIRM}`);
  }
  const config = await loadConfig();
  const ctx = await createContext(config, await logger("warn"), localFacts);
  const deps = ctx.operationDeps(() => {});
  // Ctrl-C or a SIGTERM while the stacks are quiesced: resume them before exiting, never leave them down.
  const shutdown = new AbortController();
  const onSignal = () => shutdown.abort();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    if (action === "list") {
      const list = await listSnapshots(deps);
      if (values.json) printJson(list);
      else {
        for (const s of list) {
          const when = s.snaptime ? new Date(s.snaptime * 1000).toISOString() : "?";
          process.stdout.write(`${when}  ${s.name}${s.description ? `  ${s.description.trim()}` : ""}\n`);
        }
        if (list.length === 0) process.stdout.write("no snapshots\n");
      }
      return ExitCode.ok;
    }
    if (action === "rollback") {
      const upid = await rollbackSnapshot(deps, name!);
      process.stdout.write(`rollback started (${upid}); the guest is being stopped now\n`);
      return ExitCode.ok;
    }
    const outcome =
      action === "create"
        ? await createSnapshot(deps, name!, {
            description: values.description as string | undefined,
            signal: shutdown.signal,
          })
        : await deleteSnapshot(deps, name!, { signal: shutdown.signal });
    if (values.json) printJson(outcome);
    else if (outcome.ok)
      process.stdout.write(
        `snapshot ${name} ${action === "create" ? "created" : "deleted"} (${outcome.result.upid})\n`,
      );
    else process.stdout.write(`snapshot ${action} ${name} FAILED: ${outcome.failure.message}\n`);
    const down = outcome.ok
      ? "stacksResumed" in outcome.result && !outcome.result.stacksResumed
      : !outcome.failure.stacksResumed;
    if (!values.json && down)
      process.stdout.write("  stacks NOT all resumed: check `felhom-guest stacks` and the log\n");
    if (outcome.ok) return ExitCode.ok;
    return outcome.failure.code === "backup_running" ? ExitCode.busy : ExitCode.failed;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await ctx.close();
  }
}
