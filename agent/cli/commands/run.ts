import { runDaemon } from "../../app/daemon.ts";
import { createLogger } from "../../log/logger.ts";
import { ExitCode } from "../exit-codes.ts";
import type { CommandInput } from "./command.ts";

export async function run({ loadConfig, localFacts }: CommandInput): Promise<number> {
  const config = await loadConfig();
  await runDaemon(config, createLogger({ level: config.log_level }), {
    readConfig: loadConfig,
    localFacts,
  });
  return ExitCode.ok;
}
