import { rm } from "node:fs/promises";
import type { AgentConfig } from "../config/schema.ts";
import { AgentError } from "../lib/errors.ts";
import type { Secret } from "../lib/secret.ts";
import type { Logger } from "../log/logger.ts";
import type { PveClient } from "../pve/client.ts";
import { writeFileDurable, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";
import type { LocalFacts } from "./decide-identity.ts";
import type { Enrollment } from "./enrollment-record.ts";
import { resolveIdentity, type VerifiedIdentity } from "./identity-service.ts";
import { clearRestoreRecord } from "./restore-record.ts";

/** Where enroll keeps the new token secret (0600); enrollment.json names it. */

export const TOKEN_ID_PATTERN = /^[^@\s!]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/;

/**
 * Verifies the new token against PVE first — it must see `vmid`, whose MAC, hostname and run state are
 * this guest's — and only then writes the secret (0600) and enrollment.json and forgets the "restored
 * copy" record. A token that does not verify changes nothing: the old identity stays.
 */
export async function enrollGuest(o: {
  config: AgentConfig;
  vmid: number;
  tokenId: string;
  secret: Secret;
  local: LocalFacts;
  log: Logger;
  /**
   * The PVE client a config describes, as the process builds its own (app/context.ts's createContext):
   * passed in, because identity/ sits below the wiring (README, "Layout").
   */
  connect: (config: AgentConfig) => Promise<{ pve: PveClient; close(): Promise<void> }>;
}): Promise<VerifiedIdentity> {
  if (!TOKEN_ID_PATTERN.test(o.tokenId))
    throw new AgentError("enroll_invalid", `token id ${JSON.stringify(o.tokenId)} is malformed`, {
      hint: "give it as user@realm!tokenname, e.g. agent-201@pve!backup",
    });
  const stateDir = o.config.state_dir;
  const final = statePaths(stateDir).enrollmentSecret;
  const candidate = `${final}.new`;
  await writeFileDurable(candidate, `${o.secret.reveal()}\n`, 0o600);
  try {
    const ctx = await o.connect({
      ...o.config,
      pve: { ...o.config.pve, token_id: o.tokenId, token_secret_file: candidate, vmid: o.vmid },
    });
    let identity: Awaited<ReturnType<typeof resolveIdentity>>;
    try {
      identity = await resolveIdentity(ctx.pve, { configuredVmid: o.vmid, local: o.local });
    } finally {
      await ctx.close();
    }
    if (identity.state !== "verified") {
      throw new AgentError(
        "enroll_unverified",
        `the new token does not verify as CT ${o.vmid}: ${identity.reason}`,
        { hint: identity.hint },
      );
    }
    await writeFileDurable(final, `${o.secret.reveal()}\n`, 0o600);
    await writeJsonDurable(statePaths(stateDir).enrollment, {
      vmid: o.vmid,
      tokenId: o.tokenId,
      tokenSecretFile: final,
      enrolledAt: new Date().toISOString(),
    } satisfies Enrollment);
    await clearRestoreRecord(stateDir);
    o.log.info({ vmid: identity.vmid, node: identity.node, tokenId: o.tokenId }, "enrolled");
    return identity;
  } finally {
    await rm(candidate, { force: true });
  }
}
