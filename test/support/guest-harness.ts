import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BackupDeps } from "../../agent/backup/backup-types.ts";
import type { AgentConfig } from "../../agent/config/schema.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";
import { readSecretFile } from "../../agent/lib/secret.ts";
import { type Logger, silentLogger } from "../../agent/log/logger.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { PveClient } from "../../agent/pve/client.ts";
import { type SelfScopedGuest, type SelfScopedVariant, selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator, PveSimulatorOptions } from "../pve-sim/simulator.ts";
import { compose, runningContainers, serviceContainer, waitHealthy } from "./compose.ts";

/**
 * One guest, as real as this machine allows: the PVE simulator with a self-scoped token for a guest
 * whose identity (hostname, MAC) is this machine's, the agent's state dir inside that guest's root
 * (so the marker and the journal are inside every archive, as on a real guest), and a real compose stack
 * (PostgreSQL + an app that depends on it) whose data lives inside the guest root too.
 */
export interface HarnessOptions {
  vmid?: number;
  /** felhom.quiesce label of the db service. @default "stop" */
  dbStrategy?: "stop" | "pause" | "none" | "exec";
  /** More felhom.quiesce.* labels of the db service, e.g. a pre hook. */
  dbLabels?: Record<string, string>;
  /** Publish the app on this loopback port (a test can then take the port and make its start fail). */
  appPort?: number;
  /** More services (and a top-level `volumes:` section if they need one) appended to the compose file. */
  extraCompose?: string;
  archiveBytesPerSecond?: number;
  storageUsedFrom?: PveSimulatorOptions["storageUsedFrom"];
  lockwaitScaleMs?: number;
  backup?: Partial<AgentConfig["backup"]>;
  /** What the simulated host does when vzdump stop mode shuts the guest down and starts it again. */
  onGuestStop?: PveSimulatorOptions["onGuestStop"];
  onGuestStart?: PveSimulatorOptions["onGuestStart"];
  /** Where vzdump freezes the CT and thaws it (test/support/guest-freeze.ts stops the agent's process). */
  onGuestFreeze?: PveSimulatorOptions["onGuestFreeze"];
  onGuestThaw?: PveSimulatorOptions["onGuestThaw"];
  snapshotDelayMs?: number;
  /** The backup storage's own `prune-backups` (storage.cfg), e.g. "keep-last=2". */
  storagePruneBackups?: string;
  /** The backup storage `bk`: a directory storage, or a Proxmox Backup Server. @default "dir" */
  storageType?: "dir" | "pbs";
  /** The token's grants (see test/pve-sim/fixtures.ts). @default "production" */
  variant?: SelfScopedVariant;
  log?: Logger;
}

export interface GuestHarness {
  sim: PveSimulator;
  self: SelfScopedGuest;
  pve: PveClient;
  engine: DockerEngine;
  stateDir: string;
  project: string;
  stackDir: string;
  /** The demo stack's PostgreSQL container (`<project>-db-1` under compose v2, `<project>_db_1` under v1). */
  dbContainer: string;
  network: string;
  backupConfig: AgentConfig["backup"];
  events: OperationEvent[];
  deps(overrides?: Partial<BackupDeps>): BackupDeps;
  /** Every container of the project that runs now (ids, sorted). */
  running(): Promise<string[]>;
  close(): Promise<void>;
}

export function demoComposeFile(
  dbStrategy: string,
  dbLabels: Record<string, string> = {},
  appPort?: number,
): string {
  const more = Object.entries(dbLabels)
    .map(([k, v]) => `\n      ${k}: ${JSON.stringify(v)}`)
    .join("");
  return `# The demo stack: PostgreSQL and an app that depends on it. Data lives beside this file, inside the guest root.
version: "2.4"
services:
  db:
    image: local/postgres:15
    environment:
      POSTGRES_PASSWORD: felhom
    volumes:
      - ./pgdata:/var/lib/postgresql/data
    labels:
      felhom.quiesce: "${dbStrategy}"${more}
    restart: unless-stopped
  app:
    image: local/busybox:1.35
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    depends_on:
      - db${appPort ? `\n    ports:\n      - "127.0.0.1:${appPort}:8080"` : ""}
    restart: unless-stopped
`;
}

export async function startGuestHarness(o: HarnessOptions = {}): Promise<GuestHarness> {
  const log = o.log ?? silentLogger();
  const vmid = o.vmid ?? 101;
  const local = readLocalFacts();
  const sim = await startPveSimulator({
    authFailureDelayMs: 50,
    ...(o.archiveBytesPerSecond ? { archiveBytesPerSecond: o.archiveBytesPerSecond } : {}),
    ...(o.storageUsedFrom ? { storageUsedFrom: o.storageUsedFrom } : {}),
    lockwaitScaleMs: o.lockwaitScaleMs ?? 2_000,
    ...(o.onGuestStop ? { onGuestStop: o.onGuestStop } : {}),
    ...(o.onGuestStart ? { onGuestStart: o.onGuestStart } : {}),
    ...(o.onGuestFreeze ? { onGuestFreeze: o.onGuestFreeze } : {}),
    ...(o.onGuestThaw ? { onGuestThaw: o.onGuestThaw } : {}),
    ...(o.snapshotDelayMs !== undefined ? { snapshotDelayMs: o.snapshotDelayMs } : {}),
  });
  const secrets = await mkdtemp(join(tmpdir(), "felhom-secrets-"));
  const project = `felhom-e2e-${randomBytes(3).toString("hex")}`;
  let stackDir = "";
  const cleanup = async () => {
    if (stackDir)
      await compose(project, stackDir, "down", "-v", "--timeout", "5").catch((err) =>
        console.error("compose down failed", err),
      );
    await sim.close();
    await rm(secrets, { recursive: true, force: true });
  };
  try {
    const self = await selfScopedGuest(sim, {
      vmid,
      storage: "bk",
      hostname: local.hostname,
      hwaddr: local.macs[0]!,
      variant: o.variant ?? "production",
      ...(o.storagePruneBackups ? { pruneBackups: o.storagePruneBackups } : {}),
      ...(o.storageType ? { storageType: o.storageType } : {}),
    });
    const stateDir = join(self.guest.rootDir, "var/lib/felhom-guest");
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const secretFile = join(secrets, "pve-token.secret");
    await writeFile(secretFile, self.secret);
    await chmod(secretFile, 0o600);
    const pve = new PveClient(
      {
        baseUrl: sim.url,
        tokenId: self.tokenId,
        secret: await readSecretFile(secretFile, "PVE token secret"),
        tls: { fingerprint: sim.fingerprint },
      },
      log,
    );
    const engine = new DockerEngine();

    stackDir = join(self.guest.rootDir, "srv/demo");
    await mkdir(stackDir, { recursive: true });
    await writeFile(
      join(stackDir, "docker-compose.yml"),
      demoComposeFile(o.dbStrategy ?? "stop", o.dbLabels, o.appPort) + (o.extraCompose ?? ""),
    );
    await compose(project, stackDir, "up", "-d");
    const dbContainer = await serviceContainer(project, "db");
    await waitHealthy(dbContainer);

    const backupConfig: AgentConfig["backup"] = {
      storage: "bk",
      mode: "snapshot",
      max_downtime_seconds: 120,
      busy_retry: { attempts: 1, delay_seconds: 1 },
      protected: false,
      max_protected_backups: 5,
      no_snapshot: { policy: "hold", max_hold_seconds: 3600 },
      ...o.backup,
    };
    const events: OperationEvent[] = [];
    return {
      sim,
      self,
      pve,
      engine,
      stateDir,
      project,
      stackDir,
      dbContainer,
      network: `${project}_default`,
      backupConfig,
      events,
      deps: (overrides = {}) => ({
        pve,
        engine,
        stateDir,
        backup: backupConfig,
        localFacts: readLocalFacts,
        // Other tests' stacks may run on this engine; a real guest's agent quiesces all of its own.
        projects: [project],
        emit: (e) => events.push(e),
        log,
        follow: { minIntervalMs: 50, maxIntervalMs: 250 },
        ...overrides,
      }),
      running: () => runningContainers(project),
      close: async () => {
        await pve.close();
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
