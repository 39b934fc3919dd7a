import { readSecretFile } from "../../lib/secret.ts";
import { writeFileDurable } from "../../state/durable-file.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { readSecretInput } from "../secret-input.ts";
import type { CommandInput } from "./command.ts";

/** `felhom-guest secret FILE` (usage and help in ./index.ts). */
export async function run({ positionals }: CommandInput): Promise<number> {
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new UsageError("secret needs exactly one FILE");
  const secret = await readSecretInput("secret", process.stdin, process.stderr);
  await writeFileDurable(file, `${secret.reveal()}\n`, 0o600);
  await readSecretFile(file, "secret");
  process.stderr.write(`written to ${file} (mode 0600)\n`);
  return ExitCode.ok;
}
