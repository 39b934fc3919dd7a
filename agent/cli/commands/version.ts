import { AGENT_VERSION } from "../../version.ts";
import { ExitCode } from "../exit-codes.ts";
import type { Command } from "./command.ts";

export const versionCommand: Command = {
  args: "",
  summary: "print the agent's version",
  options: {},
  async run() {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return ExitCode.ok;
  },
};
