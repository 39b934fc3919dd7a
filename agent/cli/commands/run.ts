import { runDaemon } from "../../app/daemon.ts";
import { createLogger } from "../../log/logger.ts";
import { ExitCode } from "../exit-codes.ts";
import type { Command } from "./command.ts";

export const runCommand: Command = {
  args: "",
  summary: "the daemon (systemd runs it): recovery at start, the schedule, the hub link",
  options: {},
  async run({ loadConfig, localFacts }) {
    const config = await loadConfig();
    await runDaemon(config, createLogger({ level: config.log_level }), {
      readConfig: loadConfig,
      localFacts,
    });
    return ExitCode.ok;
  },
};
