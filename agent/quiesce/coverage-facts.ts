import { realpath, stat } from "node:fs/promises";
import type { DockerEngine } from "../docker/docker-engine.ts";
import type { CtMountPoint } from "../pve/mount-points.ts";
import {
  type CoverageFacts,
  type MountCoverage,
  mountCoverage,
  mountPointOf,
  type PathFacts,
  pathsToResolve,
  type VolumeFacts,
} from "./archive-coverage.ts";
import type { StackFacts } from "./stack-facts.ts";

/**
 * The I/O behind archive-coverage.ts: each volume's driver and options from the engine, and for each path
 * its real location (symlinks resolved) and whether it lies on another file system than the CT mount point
 * holding it (`stat().dev` differs: something is mounted there inside the guest). A volume the engine
 * cannot inspect is judged by its mount alone; a path the agent cannot see, as written.
 */
export async function coverageFacts(
  engine: Pick<DockerEngine, "volume">,
  stacks: readonly StackFacts[],
  mountPoints: readonly CtMountPoint[],
): Promise<CoverageFacts> {
  const names = new Set(
    stacks.flatMap((s) =>
      s.services.flatMap((svc) =>
        (svc.containers[0]?.mounts ?? []).flatMap((m) => (m.type === "volume" && m.name ? [m.name] : [])),
      ),
    ),
  );
  const volumes = new Map<string, VolumeFacts>();
  for (const name of names) {
    const v = await engine.volume(name).catch(() => undefined);
    if (v) volumes.set(name, v);
  }
  const paths = new Map<string, PathFacts>();
  for (const path of pathsToResolve(stacks, volumes)) {
    const real = await realpath(path).catch(() => undefined);
    const on = real === undefined ? undefined : mountPointOf(real, mountPoints);
    const foreignFs =
      real !== undefined && on !== undefined && (await sameFileSystem(real, on.path)) === false;
    paths.set(path, { real, foreignFs });
  }
  return { volumes, paths };
}

/** undefined when either cannot be looked at. */
async function sameFileSystem(a: string, b: string): Promise<boolean | undefined> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.dev === sb.dev;
  } catch {
    return undefined;
  }
}

/** Facts gathered and judged: what prepareQuiesce and the doctor call. */
export async function judgedCoverage(
  engine: Pick<DockerEngine, "volume">,
  stacks: readonly StackFacts[],
  mountPoints: readonly CtMountPoint[],
): Promise<MountCoverage[]> {
  return mountCoverage(stacks, mountPoints, await coverageFacts(engine, stacks, mountPoints));
}
