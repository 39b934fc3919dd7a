import type { Dispatcher, buildConnector as UndiciBuildConnector, Pool as UndiciPool } from "undici";
import apiRequest from "undici/lib/api/api-request.js";
import connect from "undici/lib/core/connect.js";
import PoolClass from "undici/lib/dispatcher/pool.js";

// The parts of undici the PVE client uses, imported by their own files instead of through undici's index,
// which loads all of undici (fetch, WebSocket, EventSource, caches, mocks, proxies, interceptors): on Node 20
// that was 8.3 MiB of an idle daemon's RSS, these files 1.3 MiB (README, Measured). undici 7 has no "exports"
// map, so the files are reachable; the version is pinned exactly (package.json), and
// test/pve/undici-core.test.ts fails if an upgrade moves them. Static imports, so that the package's bundle
// (packaging/bundle.mjs) holds them; their types are in undici-files.d.ts.
export const Pool: typeof UndiciPool = PoolClass;
export type Pool = UndiciPool;
export const buildConnector: typeof UndiciBuildConnector = connect;
export type Connector = UndiciBuildConnector.connector;

// undici's index adds its API (request, stream, …) to every dispatcher's prototype; this calls the one
// method the client needs on its pool instead, leaving the prototypes alone.
export function request(
  pool: UndiciPool,
  options: Dispatcher.RequestOptions,
): Promise<Dispatcher.ResponseData> {
  return apiRequest.call(pool, options);
}
