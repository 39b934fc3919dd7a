import type { ParseArgsConfig } from "node:util";
import type { AgentConfig } from "../../config/schema.ts";
import type { Logger } from "../../log/logger.ts";

export interface CommandInput {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  configPath: string;
  loadConfig: () => Promise<AgentConfig>;
  logger: (level: string) => Logger;
}

export interface Command {
  /** The arguments, as shown in usage lines. */
  args: string;
  summary: string;
  help?: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(input: CommandInput): Promise<number>;
}
