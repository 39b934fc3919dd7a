import type { AgentContext } from "../app/context.ts";
import type { AgentConfig } from "../config/schema.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { resolveIdentity } from "../identity/identity-service.ts";
import { describeError } from "../lib/errors.ts";
import { type CtMountPoint, readCtMountPoints } from "../pve/mount-points.ts";

/**
 * The mount points of the CT the identity check names (its own, or for a restored copy its original's,
 * whose config it was restored with), for the CLI's "is it in the backup?" answers. Read-only
 * (VM.Audit); when PVE cannot say, the reason instead: the answers are then unknown, not "yes".
 */
export async function mountPointsForReport(
  ctx: Pick<AgentContext, "pve">,
  config: AgentConfig,
  localFacts: () => LocalFacts,
): Promise<{ mountPoints: CtMountPoint[] } | { unknown: string }> {
  try {
    const identity = await resolveIdentity(ctx.pve, { configuredVmid: config.pve.vmid, local: localFacts() });
    if (identity.vmid === undefined || identity.node === undefined)
      return {
        unknown: `PVE names no CT for this guest (${identity.state === "unverified" ? identity.reason : "no guest"})`,
      };
    return { mountPoints: await readCtMountPoints(ctx.pve, identity.node, identity.vmid) };
  } catch (err) {
    return { unknown: `could not read the CT config from PVE: ${describeError(err)}` };
  }
}
