import type { Route } from "./api-server.ts";
import type { PveSimulator } from "./simulator.ts";

export function vzdumpRoutes(_sim: PveSimulator): Route[] {
  return [];
}
