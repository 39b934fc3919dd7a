import type { ParseArgsConfig } from "node:util";
import type { AgentConfig } from "../../config/schema.ts";
import type { LocalFacts } from "../../identity/decide-identity.ts";
import type { Logger } from "../../log/logger.ts";

/**
 * The option that confirms a rollback, which kills the running guest: here, beside the command types, so
 * that the command table (index.ts) and `snapshot` (which index.ts loads) both read it without a cycle.
 */
export const SNAPSHOT_CONFIRM = "yes-kill-the-guest";

export interface CommandInput {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  configPath: string;
  loadConfig: () => Promise<AgentConfig>;
  /** A logger to stderr (pino, loaded on the first call: `version` and a relayed backup never need it). */
  logger: (level: string) => Promise<Logger>;
  /** What this guest sees of itself (hostname, MACs, uptime), for the identity check. */
  localFacts: () => LocalFacts;
}

/**
 * A command as the CLI knows it before it runs one: what usage and --help show, and how to load its code.
 * The code is imported only when the command runs, so that `version`, `--help` or a usage error do not pay
 * for the PVE client, Docker adapter, hub link and their dependencies (seconds of start-up on a small guest).
 */
export interface Command {
  /** The arguments, as shown in usage lines. */
  args: string;
  summary: string;
  help?: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  /**
   * False for a command that reads neither the config nor anything else only root may read (`version`).
   * Every other command is refused to other users with 77 (EX_NOPERM) before it starts; so is `secret`,
   * whose file only the root daemon reads and whose check (agent/lib/file-trust.ts) wants it root's.
   */
  asRoot: boolean;
  load(): Promise<(input: CommandInput) => Promise<number>>;
}
