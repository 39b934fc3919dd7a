import { composeDocuments, isRecord } from "../docker/compose-file.ts";

/**
 * The order in which stacks come back after a restore (pure). Compose orders the services of one
 * project; between projects the only hard dependency compose itself enforces is an `external` network
 * (or volume) that another project creates: `up` fails while it does not exist. So a stack using
 * `<other project>_<name>` as external comes after that project. A cycle (or anything unparsable) leaves
 * the remaining stacks in name order: bringing them up is still better than not.
 */

export interface StackResources {
  project: string;
  /** Networks and volumes the stack creates, by their engine name (`<project>_<name>` unless `name:`). */
  creates: string[];
  /** External networks and volumes it needs, by engine name. */
  needs: string[];
}

export function stackResources(project: string, composeTexts: string[]): StackResources {
  const creates = new Set<string>();
  const needs = new Set<string>();
  let usesDefault = false;
  let declaresDefault = false;
  for (const doc of composeDocuments(composeTexts)) {
    if (isRecord(doc.services)) {
      for (const svc of Object.values(doc.services)) {
        if (isRecord(svc) && svc.networks === undefined && svc.network_mode === undefined) usesDefault = true;
      }
    }
    for (const key of ["networks", "volumes"] as const) {
      const section = doc[key];
      if (!isRecord(section)) continue;
      for (const [name, def] of Object.entries(section)) {
        // A declared `default` network replaces the implicit <project>_default.
        if (key === "networks" && name === "default") declaresDefault = true;
        const d = isRecord(def) ? def : {};
        const ext = d.external;
        const explicit = typeof d.name === "string" ? d.name : undefined;
        if (ext === true || isRecord(ext)) {
          const extName = isRecord(ext) && typeof ext.name === "string" ? ext.name : undefined;
          needs.add(extName ?? explicit ?? name);
        } else {
          creates.add(explicit ?? `${project}_${name}`);
        }
      }
    }
  }
  if (usesDefault && !declaresDefault) creates.add(`${project}_default`);
  return { project, creates: [...creates], needs: [...needs] };
}

/** Levels of projects: each level only needs what earlier levels create. */
export function stackStartOrder(stacks: StackResources[]): string[][] {
  const creator = new Map<string, string>();
  for (const s of stacks) for (const c of s.creates) creator.set(c, s.project);
  const deps = new Map(
    stacks.map((s) => [
      s.project,
      new Set(s.needs.flatMap((n) => creator.get(n) ?? []).filter((p) => p !== s.project)),
    ]),
  );
  const levels: string[][] = [];
  const done = new Set<string>();
  let remaining = [...deps.keys()].sort();
  while (remaining.length > 0) {
    const ready = remaining.filter((p) => [...deps.get(p)!].every((d) => done.has(d)));
    const level = ready.length > 0 ? ready : remaining;
    levels.push(level);
    for (const p of level) done.add(p);
    remaining = remaining.filter((p) => !done.has(p));
  }
  return levels;
}
