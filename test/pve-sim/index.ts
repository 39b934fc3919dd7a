/**
 * The PVE API simulator: the one fake the project allows for Proxmox. See README.md in this directory.
 */
import { PveSimulator, type PveSimulatorOptions } from "./simulator.ts";

export type { RequestLogEntry } from "./api-server.ts";
export type { BackupFile } from "./backup-files.ts";
export type { Guest, GuestSnapshot, Storage } from "./cluster-model.ts";
export type { AddGuestOptions, PveSimulatorOptions, VzdumpRun } from "./simulator.ts";
export type { Task } from "./task-registry.ts";
export { PveSimulator };

export async function startPveSimulator(opts: PveSimulatorOptions = {}): Promise<PveSimulator> {
  const sim = new PveSimulator(opts);
  try {
    await sim.start();
  } catch (err) {
    await sim.close().catch(() => {});
    throw err;
  }
  return sim;
}
