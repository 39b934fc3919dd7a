import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { BackupOutcome } from "../backup/backup-types.ts";
import { AgentError } from "../lib/errors.ts";
import { readJsonFile, writeFileDurable, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";
import {
  type BackupHealth,
  backupHealthSchema,
  NO_HISTORY,
  nextHealth,
  renderHealth,
} from "./backup-health.ts";

/**
 * Writes the textfile the way the collector needs it: whole (a temporary sibling renamed over it; the
 * schema makes the name end in `.prom`, and the collector reads only those, never the half-written file), readable by node_exporter's own user
 * (0644 whatever the daemon's umask), and only into a directory that exists: one created here, root-only,
 * would silently hide the file from the collector.
 */
async function writeTextfile(path: string, health: BackupHealth): Promise<void> {
  const dir = dirname(path);
  const isDir = await stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir)
    throw new AgentError(
      "metrics_textfile_invalid",
      `the directory of metrics.textfile (${dir}) does not exist`,
      {
        hint: "point it at node_exporter's --collector.textfile.directory (Debian: /var/lib/prometheus/node-exporter)",
      },
    );
  await writeFileDurable(path, renderHealth(health), 0o644);
}

/** After a final outcome: the stored health updated and, when `textfile` is set, the textfile rewritten. */
export async function recordBackupHealth(
  stateDir: string,
  textfile: string | undefined,
  outcome: BackupOutcome,
  now = new Date(),
): Promise<void> {
  const prev = (await readJsonFile(statePaths(stateDir).backupHealth, backupHealthSchema)) ?? NO_HISTORY;
  const next = nextHealth(prev, outcome, now);
  await writeJsonDurable(statePaths(stateDir).backupHealth, next);
  if (textfile) await writeTextfile(textfile, next);
}

/** At start (and after a reload): the textfile from the stored health, so it exists before the next backup. */
export async function publishBackupHealth(stateDir: string, textfile: string): Promise<void> {
  await writeTextfile(
    textfile,
    (await readJsonFile(statePaths(stateDir).backupHealth, backupHealthSchema)) ?? NO_HISTORY,
  );
}
