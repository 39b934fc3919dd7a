import { readSecretFile } from "../../lib/secret.ts";
import { writeFileDurable } from "../../state/durable-file.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { readSecretInput } from "../secret-input.ts";
import type { Command } from "./command.ts";

export const secretCommand: Command = {
  args: "FILE",
  summary:
    "store a secret (the PVE token secret, the hub credential) in FILE, mode 0600, kept out of shell history",
  help: `Typed at a prompt that does not echo it, or read from stdin (felhom-guest secret FILE < /root/token.txt),
never from the command line: an argument or a here-string (<<<) lands in the shell's history. FILE is
replaced atomically with mode 0600 and checked as the agent checks it at start (owned by root, in a
directory only root can write). Then point pve.token_secret_file or hub.credential_file at it.`,
  options: {},
  async run({ positionals }) {
    const [file, ...extra] = positionals;
    if (!file || extra.length > 0) throw new UsageError("secret needs exactly one FILE");
    const secret = await readSecretInput("secret", process.stdin, process.stderr);
    await writeFileDurable(file, `${secret.reveal()}\n`, 0o600);
    await readSecretFile(file, "secret");
    process.stderr.write(`written to ${file} (mode 0600)\n`);
    return ExitCode.ok;
  },
};
