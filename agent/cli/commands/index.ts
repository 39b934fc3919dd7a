import { backupCommand } from "./backup.ts";
import { backupsCommand } from "./backups.ts";
import type { Command } from "./command.ts";
import { doctorCommand } from "./doctor.ts";
import { enrollCommand } from "./enroll.ts";
import { runCommand } from "./run.ts";
import { secretCommand } from "./secret.ts";
import { snapshotCommand } from "./snapshot.ts";
import { stacksCommand } from "./stacks.ts";
import { statusCommand } from "./status.ts";
import { versionCommand } from "./version.ts";

export type { Command };

export const commands: Record<string, Command> = {
  run: runCommand,
  backup: backupCommand,
  backups: backupsCommand,
  snapshot: snapshotCommand,
  status: statusCommand,
  stacks: stacksCommand,
  doctor: doctorCommand,
  enroll: enrollCommand,
  secret: secretCommand,
  version: versionCommand,
};
