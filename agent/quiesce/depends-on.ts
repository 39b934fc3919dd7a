import { isRecord, parseComposeFile } from "../docker/compose-file.ts";

/**
 * Dependency edges between compose services. Pure: compose file text comes in, edges come out.
 */

/**
 * Compose v2 writes `com.docker.compose.depends_on` as `svc:condition:restart,…` (older v2 releases
 * wrote `svc:condition`); only the service name matters for ordering.
 */
export function parseDependsOnLabel(value: string): string[] {
  const names = value
    .split(",")
    .map((entry) => entry.split(":")[0]!.trim())
    .filter((name) => name !== "");
  return [...new Set(names)];
}

export interface ComposeFileDeps {
  /** service → the services it depends on. */
  deps: Map<string, string[]>;
}

/**
 * `depends_on` (list or map form), `links`, `volumes_from` and `network_mode`/`ipc`/`pid: service:<name>`
 * of every service (compose v1 orders by all of them, as v2 does in its label: a VPN sidecar's app must
 * not start before the sidecar whose network it joins), merged over several `-f` files the way compose
 * merges overrides: the union of the edges.
 */
export function dependsOnFromComposeFiles(texts: string[]): Map<string, string[]> {
  const deps = new Map<string, Set<string>>();
  for (const text of texts) {
    // One file that does not parse leaves the order unknown (the caller's catch), not half-known.
    const doc = parseComposeFile(text);
    if (!isRecord(doc)) continue;
    const services = doc.services;
    if (!isRecord(services)) continue;
    for (const [name, svc] of Object.entries(services)) {
      const set = deps.get(name) ?? new Set<string>();
      deps.set(name, set);
      if (!isRecord(svc)) continue;
      for (const d of namesOf(svc.depends_on)) set.add(d);
      for (const l of namesOf(svc.links)) set.add(l.split(":")[0]!);
      // `volumes_from: [svc, "svc:ro", "container:name"]`: only services count.
      for (const v of namesOf(svc.volumes_from)) if (!v.startsWith("container:")) set.add(v.split(":")[0]!);
      for (const key of ["network_mode", "ipc", "pid"] as const) {
        const mode = svc[key];
        if (typeof mode === "string" && mode.startsWith("service:")) set.add(mode.slice("service:".length));
      }
    }
  }
  return new Map([...deps].map(([k, v]) => [k, [...v]]));
}

function namesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  if (isRecord(value)) return Object.keys(value);
  return [];
}
