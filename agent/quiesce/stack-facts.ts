import { isAbsolute, resolve } from "node:path";
import type { ContainerDetails } from "../docker/docker-engine.ts";
import { byCodeUnits } from "../lib/order.ts";
import { parseDependsOnLabel } from "./depends-on.ts";

/**
 * Compose stacks as seen from container labels. Pure: grouping and edge resolution over containers
 * that were already inspected; discover-stacks.ts does the I/O.
 */

export const COMPOSE = {
  project: "com.docker.compose.project",
  service: "com.docker.compose.service",
  workingDir: "com.docker.compose.project.working_dir",
  configFiles: "com.docker.compose.project.config_files",
  /** Compose v2 only: the env files the project was loaded with (`--env-file`, or the default `.env`). */
  environmentFile: "com.docker.compose.project.environment_file",
  number: "com.docker.compose.container-number",
  oneoff: "com.docker.compose.oneoff",
  dependsOn: "com.docker.compose.depends_on",
  version: "com.docker.compose.version",
} as const;

export interface ServiceFacts {
  name: string;
  /** Services of the same project this one depends on (unknown services already dropped). */
  dependsOn: string[];
  containers: ContainerDetails[];
}

export interface StackFacts {
  project: string;
  workingDir: string;
  configFiles: string[];
  /** Absolute paths; empty under compose v1, which does not record them. */
  environmentFiles: string[];
  /** The compose version that created the containers (label), e.g. "1.29.2" or "2.29.1". */
  composeVersion: string | undefined;
  /** Where the edges came from; "unknown" means neither a label nor a readable compose file. */
  dependsOnSource: "label" | "compose-file" | "unknown";
  services: ServiceFacts[];
}

/** `compose run` containers are one-offs: never quiesced, never part of the stack. */
export function isOneOff(labels: Record<string, string>): boolean {
  const v = labels[COMPOSE.oneoff];
  return v !== undefined && v.toLowerCase() === "true";
}

export function splitConfigFiles(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f !== "");
}

/** The compose files a container was created from, as absolute paths (relative ones are under its working dir). */
export function composeFilePaths(labels: Record<string, string>): string[] {
  const dir = labels[COMPOSE.workingDir] ?? "";
  return splitConfigFiles(labels[COMPOSE.configFiles]).map((f) => (isAbsolute(f) ? f : resolve(dir, f)));
}

/**
 * Groups containers into stacks. `fileDeps(project)` supplies edges parsed from the compose files for
 * stacks whose containers carry no v2 depends_on label (v1); it returns undefined when the files could not
 * be read.
 */
export function groupStacks(
  containers: ContainerDetails[],
  fileDeps: (project: string) => Map<string, string[]> | undefined,
): StackFacts[] {
  const byProject = new Map<string, ContainerDetails[]>();
  for (const c of containers) {
    const project = c.labels[COMPOSE.project];
    if (project === undefined || c.labels[COMPOSE.service] === undefined || isOneOff(c.labels)) continue;
    const list = byProject.get(project) ?? [];
    list.push(c);
    byProject.set(project, list);
  }
  const stacks: StackFacts[] = [];
  for (const [project, list] of [...byProject].sort(([a], [b]) => byCodeUnits(a, b))) {
    list.sort((a, b) => number(a) - number(b) || byCodeUnits(a.name, b.name));
    const first = list[0]!;
    const byService = new Map<string, ContainerDetails[]>();
    for (const c of list) {
      const svc = c.labels[COMPOSE.service]!;
      byService.set(svc, [...(byService.get(svc) ?? []), c]);
    }
    const hasLabel = list.some((c) => c.labels[COMPOSE.dependsOn] !== undefined);
    const fromFiles = hasLabel ? undefined : fileDeps(project);
    const source: StackFacts["dependsOnSource"] = hasLabel ? "label" : fromFiles ? "compose-file" : "unknown";
    const services: ServiceFacts[] = [...byService.keys()].sort().map((name) => {
      const cs = byService.get(name)!;
      const raw = hasLabel
        ? cs.flatMap((c) => parseDependsOnLabel(c.labels[COMPOSE.dependsOn] ?? ""))
        : (fromFiles?.get(name) ?? []);
      const dependsOn = [...new Set(raw)].filter((d) => d !== name && byService.has(d)).sort();
      return { name, dependsOn, containers: cs };
    });
    stacks.push({
      project,
      workingDir: first.labels[COMPOSE.workingDir] ?? "",
      configFiles: splitConfigFiles(first.labels[COMPOSE.configFiles]),
      environmentFiles: splitConfigFiles(first.labels[COMPOSE.environmentFile]),
      composeVersion: first.labels[COMPOSE.version],
      dependsOnSource: source,
      services,
    });
  }
  return stacks;
}

function number(c: ContainerDetails): number {
  return Number(c.labels[COMPOSE.number] ?? 0) || 0;
}
