import { parse } from "yaml";

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
 * `depends_on` (list or map form) and `links` (compose v1 starts linked services first too) of every
 * service, merged over several `-f` files the way compose merges overrides: the union of the edges.
 */
export function dependsOnFromComposeFiles(texts: string[]): Map<string, string[]> {
  const deps = new Map<string, Set<string>>();
  for (const text of texts) {
    // Compose files lean on `<<: *anchor` merge keys, which YAML 1.2 leaves off by default.
    const doc = parse(text, { merge: true }) as unknown;
    if (!isRecord(doc)) continue;
    const services = doc.services;
    if (!isRecord(services)) continue;
    for (const [name, svc] of Object.entries(services)) {
      const set = deps.get(name) ?? new Set<string>();
      deps.set(name, set);
      if (!isRecord(svc)) continue;
      for (const d of namesOf(svc.depends_on)) set.add(d);
      for (const l of namesOf(svc.links)) set.add(l.split(":")[0]!);
    }
  }
  return new Map([...deps].map(([k, v]) => [k, [...v]]));
}

function namesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  if (isRecord(value)) return Object.keys(value);
  return [];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
