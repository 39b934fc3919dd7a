/**
 * `npm start`: the agent's main job on an embedded default. Starts the PVE simulator with a guest whose
 * root directory holds a small demo compose stack's data (PostgreSQL + an app), writes an agent config
 * for it, and runs the real CLI (`felhom-guest backup`) against it with live progress. Uses the local
 * Docker engine; without one it says what to do and exits 69.
 *
 *   npm start                      a backup with live progress, then the archive listing
 *   npm start -- --once --json     only the backup result as JSON on stdout; exit 0 on success
 *   npm start -- --mode stop       a stop-mode backup (the stacks stay down until the archive is written)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { docker } from "../support/compose.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

const { values } = parseArgs({
  options: {
    once: { type: "boolean" },
    json: { type: "boolean" },
    mode: { type: "string", default: "snapshot" },
    keep: { type: "boolean" },
  },
});
const say = (s: string) => process.stderr.write(`[sandbox] ${s}\n`);
const IMAGES = ["local/postgres:15", "local/busybox:1.35"];

async function dockerReady(): Promise<string | undefined> {
  try {
    await new DockerEngine().ping();
  } catch (err) {
    return `no Docker engine answers on /var/run/docker.sock (${(err as Error).message})`;
  }
  for (const image of IMAGES) {
    if (
      !(await docker("image", "inspect", image).then(
        () => true,
        () => false,
      ))
    )
      return `the local image ${image} is missing`;
  }
  return undefined;
}

const cli = async (configFile: string, ...args: string[]) =>
  (await exited(spawnAgent(configFile, args, "inherit"))) ?? 1;

async function main(): Promise<number> {
  const problem = await dockerReady();
  if (problem) {
    say(`${problem}.`);
    say("The sandbox runs a real compose stack. As root, run:  bash test/docker/setup.sh");
    say(
      "(it installs Debian's docker.io and docker-compose, starts dockerd and builds the local images), then npm start again.",
    );
    return 69;
  }
  if (process.getuid?.() !== 0)
    say(
      "not root: the simulator cannot mount btrfs and will copy instead of snapshotting (it says so below)",
    );
  say(
    "starting the PVE simulator, a self-scoped token and a guest with a demo compose stack (PostgreSQL + app) …",
  );
  let h: GuestHarness | undefined;
  const secrets = await mkdtemp(join(tmpdir(), "felhom-sandbox-"));
  try {
    h = await startGuestHarness({ archiveBytesPerSecond: 110e6 });
    const configFile = await writeAgentConfig(h, secrets, ["  retention: { keep_last: 3 }"]);
    say(
      `PVE simulator at ${h.sim.url} (snapshots: ${h.sim.snapshotMethod}); guest CT ${h.self.guest.vmid}, token ${h.self.tokenId}`,
    );
    say(`demo stack "${h.project}" in ${h.stackDir}; agent config ${configFile}`);
    const code = await cli(configFile, "backup", "--mode", values.mode!, ...(values.json ? ["--json"] : []));
    if (!values.once && code === 0) {
      say("the storage now holds:");
      await cli(configFile, "backups");
    }
    if (values.keep) {
      say("--keep: everything stays up until Ctrl-C");
      await new Promise((r) => process.once("SIGINT", r));
    }
    return code;
  } finally {
    say("cleaning up (compose down, simulator stopped)");
    await h?.close();
    await rm(secrets, { recursive: true, force: true });
  }
}

process.exitCode = await main();
