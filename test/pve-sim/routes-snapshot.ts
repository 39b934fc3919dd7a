import type { Route } from "./api-server.ts";
import type { PveSimulator } from "./simulator.ts";

export function snapshotRoutes(_sim: PveSimulator): Route[] {
  return [];
}
