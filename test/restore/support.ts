import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LocalFacts } from "../../agent/identity/decide-identity.ts";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";
import type { RequestLogEntry } from "../pve-sim/api-server.ts";
import { uptimeOf } from "../pve-sim/cluster-model.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import type { GuestHarness } from "../support/guest-harness.ts";

/**
 * What a simulated guest sees of itself: this machine's hostname and MAC (the harness gave the guest
 * those), and the uptime PVE reports for that guest — inside a real CT lxcfs makes /proc/uptime the
 * container's, so a guest's own uptime and PVE's agree.
 */
export const guestFacts =
  (sim: PveSimulator, vmid: number): (() => LocalFacts) =>
  () => ({ ...readLocalFacts(), uptimeSeconds: uptimeOf(sim.getGuest(vmid)) });

export interface CopyView {
  rootDir: string;
  stateDir: string;
  stackDir: string;
  project: string;
}

/**
 * The restored copy's state as the copy itself would see it. In a real CT the copy's `/srv/demo` is its
 * own file system and its engine is its own, so the registry's paths and project name just work. Here
 * both guests are directories on one machine with one engine: the copy's registry is mapped onto the
 * copy's root directory, and its project gets its own name so that compose in the copy cannot touch the
 * original's containers. Nothing else in the copy's state is changed.
 */
export async function viewFromCopy(h: GuestHarness, rootDir: string, name = "copy"): Promise<CopyView> {
  const stateDir = join(rootDir, "var/lib/felhom-guest");
  const project = `${h.project}-${name}`;
  const path = join(stateDir, "stacks.json");
  const data = JSON.parse((await readFile(path, "utf8")).split(h.self.guest.rootDir).join(rootDir)) as {
    stacks: Record<string, { project: string }>;
  };
  const stack = data.stacks[h.project]!;
  delete data.stacks[h.project];
  data.stacks[project] = { ...stack, project };
  await writeFile(path, JSON.stringify(data), { mode: 0o600 });
  return { rootDir, stateDir, stackDir: join(rootDir, "srv/demo"), project };
}

export const isWrite = (r: RequestLogEntry): boolean => ["POST", "PUT", "DELETE"].includes(r.method);

/** A write that names `vmid` in its path or its parameters. */
export const touches = (r: RequestLogEntry, vmid: number): boolean =>
  new RegExp(`/${vmid}(/|$)`).test(r.path) || r.params.vmid === String(vmid);
