import { createContext } from "../../app/context.ts";
import type { AgentConfig } from "../../config/schema.ts";
import { type ContainerDetails, DockerEngine } from "../../docker/docker-engine.ts";
import type { LocalFacts } from "../../identity/decide-identity.ts";
import { describeError } from "../../lib/errors.ts";
import { byCodeUnits } from "../../lib/order.ts";
import type { Logger } from "../../log/logger.ts";
import { withOperationLock } from "../../operation/operation-lock.ts";
import type { CtMountPoint } from "../../pve/mount-points.ts";
import { coverageText } from "../../quiesce/archive-coverage.ts";
import type { LabelSource } from "../../quiesce/image-labels.ts";
import { quiesceLabels } from "../../quiesce/labels.ts";
import { prepareQuiesce } from "../../quiesce/quiesce-stacks.ts";
import { bringStacksUp } from "../../restore/stacks-up.ts";
import { mountPointsForReport } from "../ct-mount-points.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

/**
 * A service's felhom.quiesce* labels with where each came from: the compose file (they count) or the
 * image (ignored, agent/quiesce/image-labels.ts).
 */
function labelSources(
  c: ContainerDetails | undefined,
): { key: string; value: string; source: LabelSource }[] {
  if (!c) return [];
  const own = Object.entries(quiesceLabels(c.labels)).map(([key, value]) => ({
    key,
    value,
    source: "compose" as const,
  }));
  const image = Object.entries(c.labelsFromImage ?? {}).map(([key, value]) => ({
    key,
    value,
    source: "image" as const,
  }));
  return [...own, ...image].sort((a, b) => byCodeUnits(a.key, b.key));
}

/** How long `stacks` waits for PVE, all requests together, with no retry. */
const PVE_LOOK_MS = 5_000;

async function pveMountPoints(
  config: AgentConfig,
  log: Logger,
  localFacts: () => LocalFacts,
): Promise<{ mountPoints: CtMountPoint[] } | { unknown: string }> {
  const ctx = await createContext(config, log, localFacts, { timeoutMs: PVE_LOOK_MS }).catch(
    (err: unknown) => ({ unknown: `no PVE client: ${describeError(err)}` }),
  );
  if ("unknown" in ctx) return ctx;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<{ unknown: string }>((resolve) => {
    timer = setTimeout(
      () => resolve({ unknown: `PVE did not answer within ${PVE_LOOK_MS / 1000} s` }),
      PVE_LOOK_MS,
    );
  });
  try {
    return await Promise.race([mountPointsForReport(ctx, config, localFacts), deadline]);
  } finally {
    clearTimeout(timer);
    await ctx.close().catch(() => undefined);
  }
}

export async function run({
  values,
  positionals,
  loadConfig,
  logger,
  localFacts,
}: CommandInput): Promise<number> {
  const config = await loadConfig();
  const [action, ...projects] = positionals;
  if (action !== undefined && action !== "up")
    throw new UsageError(`unknown stacks action "${action}"; see --help`);
  if (action === "up") {
    const me = { kind: "stacks-up", operationId: `stacks-up-${process.pid}` } as const;
    const log = await logger("warn");
    const outcomes = await withOperationLock(config.state_dir, me, "stacks up", () =>
      bringStacksUp(
        {
          engine: new DockerEngine({ socketPath: config.docker.socket }),
          stateDir: config.state_dir,
          log,
          configuredProjects: config.docker.projects,
        },
        projects.length > 0 ? projects : undefined,
      ),
    );
    if (values.json) printJson(outcomes);
    else
      for (const o of outcomes)
        process.stdout.write(`${o.project.padEnd(24)} ${o.outcome}${o.message ? `  ${o.message}` : ""}\n`);
    return outcomes.some((o) => o.outcome === "failed") ? ExitCode.failed : ExitCode.ok;
  }
  const log = await logger("warn");
  // Which mount point each mount's data lies on, and whether vzdump archives it: PVE's side of the answer,
  // asked alongside Docker's, once and briefly: the stacks are the answer, this only completes it.
  const ct = pveMountPoints(config, log, localFacts);
  const engine = new DockerEngine({ socketPath: config.docker.socket });
  const prepared = await prepareQuiesce(
    { engine, stateDir: config.state_dir, logger: log },
    // The same stacks a backup would quiesce: docker.projects, when set, names the guest's own.
    {
      volumeSizes: true,
      ...(config.docker.projects ? { projects: config.docker.projects } : {}),
      mountPoints: ct.then((c) => ("mountPoints" in c ? c.mountPoints : undefined)),
    },
  );
  const plannedStrategy = new Map(
    prepared.plan.levels.flat().map((s) => [`${s.project}/${s.service}`, s.strategy] as const),
  );
  const stacks = prepared.stacks.map((st) => ({
    project: st.project,
    workingDir: st.workingDir,
    configFiles: st.configFiles,
    services: st.services.map((s) => ({
      name: s.name,
      strategy: plannedStrategy.get(`${st.project}/${s.name}`) ?? "none",
      dependsOn: s.dependsOn,
      containers: s.containers.map((c) => ({ name: c.name, state: c.state })),
      labels: labelSources(s.containers[0]),
      // "Is this data in the backup?" per mount; absent when PVE could not say (`archiveCheck`)
      ...(prepared.coverage
        ? {
            mounts: prepared.coverage
              .filter((c) => c.project === st.project && c.service === s.name)
              .map((c) => ({
                type: c.type,
                source: c.source,
                destination: c.destination,
                ...(c.volume ? { volume: c.volume } : {}),
                inArchive: c.inArchive,
                cause: c.cause,
                ...(c.realPath ? { realPath: c.realPath } : {}),
                ...(c.mountPoint ? { mountPoint: c.mountPoint.key } : {}),
                why: coverageText(c),
              })),
          }
        : {}),
    })),
  }));
  const pveAnswer = await ct;
  const archiveCheck = "unknown" in pveAnswer ? { known: false, reason: pveAnswer.unknown } : { known: true };
  if (values.json) {
    printJson({ stacks, warnings: prepared.warnings, archiveCheck });
    return ExitCode.ok;
  }
  for (const st of stacks) {
    process.stdout.write(`${st.project}  (${st.workingDir})\n`);
    for (const s of st.services) {
      const states = s.containers.map((c) => c.state).join(",");
      const deps = s.dependsOn.length ? `  depends on ${s.dependsOn.join(", ")}` : "";
      process.stdout.write(`  ${s.name.padEnd(20)} ${s.strategy.padEnd(6)} ${states}${deps}\n`);
      for (const l of s.labels)
        process.stdout.write(
          `    ${l.key}=${l.value}  (${l.source === "compose" ? "compose" : "image: ignored"})\n`,
        );
      for (const m of s.mounts ?? [])
        process.stdout.write(
          `    ${m.destination}  in backup: ${m.inArchive ? "yes" : "NO "} (${m.cause !== "mount point" ? m.cause : m.mountPoint === "rootfs" ? "root file system" : `mount point ${m.mountPoint}`}; ${m.realPath ? `${m.source} → ${m.realPath}` : m.source})\n`,
        );
    }
  }
  if (!archiveCheck.known)
    process.stdout.write(`note: whether each mount is in the backup is unknown: ${archiveCheck.reason}\n`);
  if (stacks.length === 0) process.stdout.write("no compose stacks found\n");
  for (const w of prepared.warnings) process.stdout.write(`warning: ${w.message}\n`);
  return ExitCode.ok;
}
