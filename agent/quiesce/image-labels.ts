import { readFile } from "node:fs/promises";
import { isRecord, parseComposeFile } from "../docker/compose-file.ts";
import type { ContainerDetails, DockerEngine } from "../docker/docker-engine.ts";
import { quiesceLabels } from "./labels.ts";
import { COMPOSE, composeFilePaths } from "./stack-facts.ts";

/**
 * Which felhom.quiesce* labels count. A container inherits every label of its image, so a third-party
 * image could set `felhom.quiesce=none` (its database never quiesced), an hour-long timeout, or an invalid
 * value that fails every backup with plan_invalid. The rule: **only labels set for the container (the
 * compose file's `labels:`, or `docker run --label`) count**; one that comes from the image is left out of
 * the policy, reported by `felhom-guest stacks` with its source and warned about, and the service is
 * quiesced as its own labels (or the default, stop) say.
 *
 * Docker keeps no record of where a label came from. A label whose value differs from the image's was set
 * for the container. One equal to the image's is the image's unless the compose file's service sets that
 * key itself (then the operator chose it, the same value or not); if the compose files cannot be read, it
 * counts as the image's.
 */

export type LabelSource = "compose" | "image";

/** Pure: the container's own quiesce labels, and those it only has from its image. */
export function attributeLabels(
  containerLabels: Record<string, string>,
  imageLabels: Record<string, string>,
  /** Keys the compose file's service sets in `labels:`; undefined when the files could not be read. */
  composeKeys: ReadonlySet<string> | undefined,
): { labels: Record<string, string>; fromImage: Record<string, string> } {
  const labels = { ...containerLabels };
  const fromImage: Record<string, string> = {};
  for (const [key, value] of Object.entries(quiesceLabels(containerLabels))) {
    if (imageLabels[key] === value && !composeKeys?.has(key)) {
      fromImage[key] = value;
      delete labels[key];
    }
  }
  return { labels, fromImage };
}

/** Pure: service → the label keys its `labels:` sets (map or `KEY=value` list form), merged over `-f` files. */
export function labelKeysFromComposeFiles(texts: string[]): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const text of texts) {
    const doc = parseComposeFile(text);
    const services = isRecord(doc) ? doc.services : undefined;
    if (!isRecord(services)) continue;
    for (const [name, svc] of Object.entries(services)) {
      const set = keys.get(name) ?? new Set<string>();
      keys.set(name, set);
      const l = isRecord(svc) ? svc.labels : undefined;
      if (Array.isArray(l)) for (const e of l) if (typeof e === "string") set.add(e.split("=")[0]!.trim());
      if (isRecord(l)) for (const k of Object.keys(l)) set.add(k);
    }
  }
  return keys;
}

/**
 * Applies the rule to inspected containers: their `labels` keep only the quiesce labels that count, and
 * `labelsFromImage` holds the others. Images are inspected once each; compose files are read only for a
 * label whose value equals its image's.
 */
export async function separateImageLabels(
  engine: Pick<DockerEngine, "imageLabels">,
  containers: ContainerDetails[],
): Promise<ContainerDetails[]> {
  const images = new Map<string, Promise<Record<string, string>>>();
  const composeFiles = new Map<string, Promise<Map<string, Set<string>> | undefined>>();
  const imageLabelsOf = (id: string) => {
    // An image that cannot be inspected has no labels to take away: the container's all count.
    if (!images.has(id))
      images.set(
        id,
        engine.imageLabels(id).catch(() => ({})),
      );
    return images.get(id)!;
  };
  const composeKeysOf = (c: ContainerDetails) => {
    const project = c.labels[COMPOSE.project] ?? "";
    if (!composeFiles.has(project)) composeFiles.set(project, readLabelKeys(c));
    return composeFiles.get(project)!;
  };
  return Promise.all(
    containers.map(async (c) => {
      const own = quiesceLabels(c.labels);
      if (Object.keys(own).length === 0) return c;
      const image = await imageLabelsOf(c.imageId);
      const ambiguous = Object.entries(own).some(([k, v]) => image[k] === v);
      const keys = ambiguous ? (await composeKeysOf(c))?.get(c.labels[COMPOSE.service] ?? "") : undefined;
      const { labels, fromImage } = attributeLabels(c.labels, image, keys);
      return Object.keys(fromImage).length === 0 ? c : { ...c, labels, labelsFromImage: fromImage };
    }),
  );
}

async function readLabelKeys(c: ContainerDetails): Promise<Map<string, Set<string>> | undefined> {
  const files = composeFilePaths(c.labels);
  if (files.length === 0) return undefined;
  try {
    return labelKeysFromComposeFiles(await Promise.all(files.map((f) => readFile(f, "utf8"))));
  } catch {
    return undefined;
  }
}
