import type { ParseArgsConfig } from "node:util";
import type { AgentConfig } from "../../config/schema.ts";
import type { LocalFacts } from "../../identity/decide-identity.ts";
import type { Logger } from "../../log/logger.ts";

export interface CommandInput {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  configPath: string;
  loadConfig: () => Promise<AgentConfig>;
  logger: (level: string) => Logger;
  /** What this guest sees of itself (hostname, MACs, uptime), for the identity check. */
  localFacts: () => LocalFacts;
}

export interface Command {
  /** The arguments, as shown in usage lines. */
  args: string;
  summary: string;
  help?: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(input: CommandInput): Promise<number>;
}
