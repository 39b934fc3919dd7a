import { readFile } from "node:fs/promises";
import type { ContainerDetails, DockerEngine } from "../docker/docker-engine.ts";
import { dependsOnFromComposeFiles } from "./depends-on.ts";
import { separateImageLabels } from "./image-labels.ts";
import { COMPOSE, composeFilePaths, groupStacks, isOneOff, type StackFacts } from "./stack-facts.ts";

/**
 * Finds the compose stacks on this guest: every compose-labelled container (one-offs skipped), inspected
 * for what quiesce needs, grouped by project. Compose files are read only for stacks made by compose v1,
 * whose containers do not carry the depends_on label.
 */
export async function discoverStacks(
  engine: Pick<DockerEngine, "listComposeContainers" | "inspect" | "imageLabels">,
  /** Only these compose projects; all of them when undefined. */
  projects?: string[],
): Promise<StackFacts[]> {
  const summaries = (await engine.listComposeContainers(projects)).filter((c) => !isOneOff(c.labels));
  const details = await Promise.all(summaries.map((c) => inspectIfPresent(engine, c.id)));
  // Only quiesce labels set for the container count, not those its image carries (image-labels.ts).
  const containers = await separateImageLabels(
    engine,
    details.filter((d): d is ContainerDetails => d !== undefined),
  );

  const fileDeps = new Map<string, Map<string, string[]> | undefined>();
  const byProject = new Map<string, ContainerDetails>();
  for (const c of containers) {
    const p = c.labels[COMPOSE.project];
    if (p !== undefined && !byProject.has(p)) byProject.set(p, c);
  }
  await Promise.all(
    [...byProject].map(async ([project, c]) => {
      if (
        containers.some(
          (x) => x.labels[COMPOSE.project] === project && x.labels[COMPOSE.dependsOn] !== undefined,
        )
      ) {
        return;
      }
      fileDeps.set(project, await readComposeDeps(composeFilePaths(c.labels)));
    }),
  );
  return groupStacks(containers, (project) => fileDeps.get(project));
}

/** A container removed between list and inspect is simply not part of the stack any more. */
async function inspectIfPresent(
  engine: Pick<DockerEngine, "inspect">,
  id: string,
): Promise<ContainerDetails | undefined> {
  try {
    return await engine.inspect(id);
  } catch (err) {
    if ((err as { code?: string }).code === "container_not_found") return undefined;
    throw err;
  }
}

async function readComposeDeps(files: string[]): Promise<Map<string, string[]> | undefined> {
  if (files.length === 0) return undefined;
  try {
    return dependsOnFromComposeFiles(await Promise.all(files.map((f) => readFile(f, "utf8"))));
  } catch {
    // Unreadable or unparsable files leave the order unknown; stack-warnings.ts reports it.
    return undefined;
  }
}
