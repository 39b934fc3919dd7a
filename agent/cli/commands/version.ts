import { AGENT_VERSION } from "../../version.ts";
import { ExitCode } from "../exit-codes.ts";

export async function run(): Promise<number> {
  process.stdout.write(`${AGENT_VERSION}\n`);
  return ExitCode.ok;
}
