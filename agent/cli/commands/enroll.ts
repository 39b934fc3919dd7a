import { enrollGuest } from "../../identity/enrollment.ts";
import { readLocalFacts } from "../../identity/identity-service.ts";
import { AgentError } from "../../lib/errors.ts";
import { readSecretFile, Secret } from "../../lib/secret.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

export async function run({ values, positionals, loadConfig, logger }: CommandInput): Promise<number> {
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
    secretFile === "-" ? await secretFromStdin() : await readSecretFile(secretFile, "PVE token secret");
  const identity = await enrollGuest({
    config,
    vmid,
    tokenId,
    secret,
    local: readLocalFacts(),
    log: await logger("warn"),
  });
  if (values.json) printJson({ vmid: identity.vmid, node: identity.node, identityState: identity.state });
  else
    process.stdout.write(
      `enrolled as CT ${identity.vmid} on ${identity.node}; restart the daemon: systemctl restart felhom-guest\n`,
    );
  return ExitCode.ok;
}

async function secretFromStdin(): Promise<Secret> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const value = Buffer.concat(chunks).toString("utf8").trim();
  if (value === "")
    throw new AgentError("secret_file_empty", "no token secret on stdin", {
      hint: "pipe the secret in: felhom-guest enroll … --token-secret-file - < secret",
    });
  return new Secret(value);
}
