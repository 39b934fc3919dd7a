import { createContext } from "../../app/context.ts";
import { backupIdFromNotes } from "../../backup/notes.ts";
import { resolveIdentity } from "../../identity/identity-service.ts";
import { AgentError } from "../../lib/errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

export async function run({ values, loadConfig, logger, localFacts }: CommandInput): Promise<number> {
  const config = await loadConfig();
  const ctx = await createContext(config, await logger("warn"), localFacts);
  try {
    const identity = await resolveIdentity(ctx.pve, {
      configuredVmid: config.pve.vmid,
      local: localFacts(),
    });
    if (identity.vmid === undefined || identity.node === undefined) {
      throw new AgentError(
        "identity_unverified",
        identity.state === "unverified" ? identity.reason : "no guest",
        {
          hint: identity.state === "unverified" ? identity.hint : "",
        },
      );
    }
    const volumes = await ctx.pve.backups(identity.node, config.backup.storage, identity.vmid);
    const rows = volumes
      .map((v) => ({ ...v, backupId: backupIdFromNotes(v.notes) ?? null }))
      .sort((a, b) => (b.ctime ?? 0) - (a.ctime ?? 0));
    if (values.json) printJson(rows);
    else {
      if (identity.state !== "verified")
        process.stderr.write(`note: identity not verified: ${identity.reason}\n`);
      for (const r of rows) {
        const when = r.ctime ? new Date(r.ctime * 1000).toISOString().replace(".000Z", "Z") : "?";
        process.stdout.write(
          `${when}  ${(r.size / 1024 / 1024).toFixed(1).padStart(9)} MiB  ${r.protected ? "protected " : ""}${r.volid}${r.backupId ? `  (${r.backupId})` : ""}\n`,
        );
      }
      if (rows.length === 0)
        process.stdout.write(`no backups of CT ${identity.vmid} in storage ${config.backup.storage}\n`);
    }
    return ExitCode.ok;
  } finally {
    await ctx.close();
  }
}
