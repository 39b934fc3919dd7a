import { enrollGuest } from "../../identity/enrollment.ts";
import { readSecretFile } from "../../lib/secret.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import { readSecretInput } from "../secret-input.ts";
import type { Command } from "./command.ts";

export const enrollCommand: Command = {
  args: "--vmid N --token-id USER@REALM!NAME --token-secret-file FILE|-  [--json]",
  summary: "give this guest (e.g. a restored copy) its own PVE token and vmid",
  help: `The token must be scoped to this guest's own vmid (see docs/restore.md). It is checked against PVE
first: it must see CT N, whose MAC, hostname and run state are this guest's. Only then is the secret
written (mode 0600) to <state_dir>/enrollment/ and <state_dir>/enrollment.json made to override
pve.token_id, pve.token_secret_file and pve.vmid of the config. The secret is read from FILE (mode 0600)
or, with "-", typed at a prompt that does not echo it (or piped in: - < FILE); never from the command
line or a here-string, which land in the shell's history. Restart the daemon afterwards
(systemctl restart felhom-guest); the hub command "enroll" needs no restart.`,
  options: {
    vmid: { type: "string" },
    "token-id": { type: "string" },
    "token-secret-file": { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals, loadConfig, logger, localFacts }) {
    if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
    const vmid = Number(values.vmid);
    if (!Number.isInteger(vmid) || vmid < 100) throw new UsageError("enroll needs --vmid N (100 or more)");
    const tokenId = values["token-id"];
    if (typeof tokenId !== "string") throw new UsageError("enroll needs --token-id USER@REALM!NAME");
    const secretFile = values["token-secret-file"];
    if (typeof secretFile !== "string")
      throw new UsageError("enroll needs --token-secret-file FILE (or - for stdin)");
    const config = await loadConfig();
    const secret =
      secretFile === "-"
        ? await readSecretInput("PVE token secret", process.stdin, process.stderr)
        : await readSecretFile(secretFile, "PVE token secret");
    const identity = await enrollGuest({
      config,
      vmid,
      tokenId,
      secret,
      local: localFacts(),
      log: logger("warn"),
    });
    if (values.json) printJson({ vmid: identity.vmid, node: identity.node, identityState: identity.state });
    else
      process.stdout.write(
        `enrolled as CT ${identity.vmid} on ${identity.node}; restart the daemon: systemctl restart felhom-guest\n`,
      );
    return ExitCode.ok;
  },
};
