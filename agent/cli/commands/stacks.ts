import { withBackupLock } from "../../backup/backup-lock.ts";
import { DockerEngine } from "../../docker/docker-engine.ts";
import { prepareQuiesce } from "../../quiesce/quiesce-stacks.ts";
import { bringStacksUp } from "../../restore/stacks-up.ts";
import { ExitCode, UsageError } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import type { Command } from "./command.ts";

export const stacksCommand: Command = {
  args: "[up [PROJECT…]] [--json]",
  summary: "the compose stacks found on this guest, how each service would be quiesced, and warnings",
  help: `stacks            list the stacks (running or not), each service's strategy, and warnings
stacks up [P…]    compose up -d for every remembered stack (or the named ones), in dependency order,
                  waiting for healthchecks: what the agent does after a restore. Refused (exit 75)
                  while a backup or snapshot runs (it brings its stacks back by itself the moment the
                  storage snapshot exists), and no backup starts while it runs. To start a container
                  in the middle of a backup anyway, use docker start: that backup may then not be
                  app-consistent`,
  options: { json: { type: "boolean" } },
  async run({ values, positionals, loadConfig, logger }) {
    const config = await loadConfig();
    const [action, ...projects] = positionals;
    if (action !== undefined && action !== "up")
      throw new UsageError(`unknown stacks action "${action}"; see --help`);
    if (action === "up") {
      const me = {
        pid: process.pid,
        backupId: `stacks-up-${process.pid}`,
        mode: "snapshot",
        kind: "stacks-up",
      } as const;
      const outcomes = await withBackupLock(config.state_dir, me, "stacks up", () =>
        bringStacksUp(
          {
            engine: new DockerEngine({ socketPath: config.docker.socket }),
            stateDir: config.state_dir,
            log: logger("warn"),
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
    const engine = new DockerEngine({ socketPath: config.docker.socket });
    const prepared = await prepareQuiesce(
      { engine, stateDir: config.state_dir, logger: logger("warn") },
      // The same stacks a backup would quiesce: docker.projects, when set, names the guest's own.
      { volumeSizes: true, ...(config.docker.projects ? { projects: config.docker.projects } : {}) },
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
      })),
    }));
    if (values.json) {
      printJson({ stacks, warnings: prepared.warnings });
      return ExitCode.ok;
    }
    for (const st of stacks) {
      process.stdout.write(`${st.project}  (${st.workingDir})\n`);
      for (const s of st.services) {
        const states = s.containers.map((c) => c.state).join(",");
        const deps = s.dependsOn.length ? `  depends on ${s.dependsOn.join(", ")}` : "";
        process.stdout.write(`  ${s.name.padEnd(20)} ${s.strategy.padEnd(6)} ${states}${deps}\n`);
      }
    }
    if (stacks.length === 0) process.stdout.write("no compose stacks found\n");
    for (const w of prepared.warnings) process.stdout.write(`warning: ${w.message}\n`);
    return ExitCode.ok;
  },
};
