import { createContext } from "../../app/context.ts";
import { enrollGuest } from "../../identity/enrollment.ts";
import { readSecretFile } from "../../lib/secret.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import { readSecretInput } from "../secret-input.ts";
import type { CommandInput } from "./command.ts";

export async function run({
  values,
  positionals,
  loadConfig,
  logger,
  localFacts,
}: CommandInput): Promise<number> {
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
  const log = await logger("warn");
  const identity = await enrollGuest({
    config,
    vmid,
    tokenId,
    secret,
    local: localFacts(),
    log,
    connect: (c) => createContext(c, log, localFacts),
  });
  if (values.json) printJson({ vmid: identity.vmid, node: identity.node, identityState: identity.state });
  else
    process.stdout.write(
      `enrolled as CT ${identity.vmid} on ${identity.node}; restart the daemon: systemctl restart felhom-guest\n`,
    );
  return ExitCode.ok;
}
