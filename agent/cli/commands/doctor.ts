import { createContext } from "../../app/context.ts";
import { checkSnapshot } from "../../backup/backup-preflight.ts";
import { DOC_DIR } from "../../config/paths.ts";
import type { AgentConfig } from "../../config/schema.ts";
import { detectCompose } from "../../docker/compose-cli.ts";
import { assessArchiveCoverage } from "../../doctor/assess-archive-coverage.ts";
import {
  assessPermissions,
  assessUnscopedPermissions,
  type Finding,
} from "../../doctor/assess-permissions.ts";
import { assessProtectedBackups } from "../../doctor/assess-protected.ts";
import { assessSnapshot } from "../../doctor/assess-snapshot.ts";
import { probeHub } from "../../doctor/probe-hub.ts";
import { readHubCa } from "../../hub/hub-client.ts";
import { resolveIdentity } from "../../identity/identity-service.ts";
import { readRestoreRecord } from "../../identity/restore-record.ts";
import { describeError } from "../../lib/errors.ts";
import { readSecretFile, type Secret } from "../../lib/secret.ts";
import type { PveClient } from "../../pve/client.ts";
import { readCtMountPoints } from "../../pve/mount-points.ts";
import type { Permissions } from "../../pve/schemas.ts";
import { judgedCoverage } from "../../quiesce/coverage-facts.ts";
import { discoverStacks } from "../../quiesce/discover-stacks.ts";
import { ExitCode, exitCodeFor } from "../exit-codes.ts";
import { printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

const MARK = { ok: "ok  ", warn: "WARN", error: "FAIL" } as const;

/**
 * The token's effective privileges. Without `path`, PVE lists only its fixed paths and those named in the ACL
 * tree (pve-api-facts §7), so a role granted on `/` or `/vms` has no `/vms/<id>` entry there; asked with
 * `path`, PVE resolves what propagates down to it. The listing is still read for what the token holds
 * elsewhere (the over-privilege warning); the two path answers take precedence over its entries.
 */
async function effectivePermissions(
  pve: Pick<PveClient, "permissions">,
  vmid: number | undefined,
  storage: string,
): Promise<Permissions> {
  const [listed, guest, store] = await Promise.all([
    pve.permissions(),
    vmid !== undefined ? pve.permissions({ path: `/vms/${vmid}` }) : Promise.resolve({}),
    pve.permissions({ path: `/storage/${storage}` }),
  ]);
  return { ...listed, ...guest, ...store };
}

export async function run({ values, loadConfig, logger, localFacts }: CommandInput): Promise<number> {
  const findings: Finding[] = [];
  const check = async (what: string, fn: () => Promise<Finding[] | string>) => {
    try {
      const r = await fn();
      if (typeof r === "string") findings.push({ level: "ok", message: `${what}: ${r}` });
      else findings.push(...r);
    } catch (err) {
      const hint = (err as { hint?: string }).hint;
      findings.push({
        level: "error",
        // The hint has its own line: not again inside the message, as describeError would add it.
        message: `${what}: ${hint ? (err as Error).message : describeError(err)}`,
        ...(hint ? { hint } : {}),
      });
    }
  };
  let config: AgentConfig;
  try {
    config = await loadConfig();
  } catch (err) {
    // Every problem is named in one finding; --json still prints its report, and the exit is 78 as for run.
    await check("config", () => Promise.reject(err));
    report(findings, values.json === true);
    return exitCodeFor(err);
  }
  findings.push({ level: "ok", message: "config: valid" });
  if (config.pve.tls.insecure) {
    // The PVE client's own warning goes to a logger that doctor keeps quiet (stdout is for the report).
    findings.push({
      level: "warn",
      message:
        "pve.tls.insecure: TLS verification of the PVE API is OFF; anyone on the path can read the token",
      hint: "pin the node certificate instead: pve.tls.fingerprint (`pvenode cert info` on the node)",
    });
  }
  const copy = await readRestoreRecord(config.state_dir).catch(() => undefined);
  if (copy) {
    findings.push({
      level: "error",
      message: `this guest is a restored copy of CT ${copy.originalVmid ?? "?"} (backup ${copy.fromBackupId ?? "?"}, detected ${copy.detectedAt}): it makes no backups or snapshots`,
      hint: `give it its own network identity and token, then: felhom-guest enroll --vmid N --token-id ID --token-secret-file FILE (${DOC_DIR}/restore.md)`,
    });
  }
  const ctx = await createContext(config, await logger("error"), localFacts).catch(async (err) => {
    await check("PVE token secret", () => Promise.reject(err));
    return undefined;
  });
  if (ctx) {
    try {
      await check("PVE API (TLS and token)", async () => {
        const v = await ctx.pve.version();
        return `reachable, Proxmox VE ${v.version}, token accepted`;
      });
      const identity = await resolveIdentity(ctx.pve, {
        configuredVmid: config.pve.vmid,
        local: localFacts(),
      }).catch(() => undefined);
      if (identity?.state === "verified") {
        findings.push({
          level: "ok",
          message: `identity: CT ${identity.vmid} on node ${identity.node}, MAC and hostname match`,
        });
      } else if (identity) {
        findings.push({ level: "error", message: `identity: ${identity.reason}`, hint: identity.hint });
      }
      await check("permissions", async () => {
        const vmid = identity?.vmid ?? config.pve.vmid;
        const perms = await effectivePermissions(ctx.pve, vmid, config.backup.storage);
        const visible = (await ctx.pve.clusterVms()).length;
        if (vmid !== undefined) return assessPermissions(perms, vmid, config.backup.storage, visible);
        return [assessUnscopedPermissions(perms)];
      });
      if (identity?.node !== undefined) {
        await check(`backup storage ${config.backup.storage}`, async () => {
          const s = await ctx.pve.storageStatus(identity.node!, config.backup.storage);
          if (s.active === false) throw new Error("not active on this node");
          // on a PBS datastore the free space is the whole datastore's, shared with every other client
          const kind = s.type === "pbs" ? " (Proxmox Backup Server)" : s.type ? ` (${s.type})` : "";
          return `active${kind}${s.avail !== undefined ? `, ${(s.avail / 1024 ** 3).toFixed(1)} GiB free` : ""}`;
        });
        const vmid = identity.vmid;
        if (vmid !== undefined) {
          // Only informs, as in a backup: a coverage that cannot be judged is a warning, and the cause (Docker
          // down, the CT config unreadable) is the error of its own check ("Docker engine", "permissions").
          await check("archive coverage", async () => {
            try {
              const mountPoints = await readCtMountPoints(ctx.pve, identity.node!, vmid);
              const stacks = await discoverStacks(ctx.engine, config.docker.projects);
              return assessArchiveCoverage(
                vmid,
                mountPoints,
                await judgedCoverage(ctx.engine, stacks, mountPoints),
              );
            } catch (err) {
              return [
                {
                  level: "warn",
                  message: `archive coverage: not checked: ${describeError(err)}`,
                  hint: "which container data a backup leaves out is unknown until this check can run; see the other findings for the cause",
                },
              ];
            }
          });
        }
        if (vmid !== undefined) {
          await check("snapshot", async () => {
            const mountPoints = await readCtMountPoints(ctx.pve, identity.node!, vmid).catch(() => undefined);
            const verdict = await checkSnapshot(ctx.pve, identity.node!, vmid, mountPoints);
            return [
              assessSnapshot(verdict, mountPoints, {
                mode: config.backup.mode,
                policy: config.backup.no_snapshot.policy,
                maxDowntimeSeconds: config.backup.max_downtime_seconds,
                maxHoldSeconds: config.backup.no_snapshot.max_hold_seconds,
              }),
            ];
          });
        }
        if (config.backup.protected && vmid !== undefined) {
          await check("protected backups", async () => {
            const archives = await ctx.pve.backups(identity.node!, config.backup.storage, vmid);
            return [assessProtectedBackups(archives, vmid, config.backup.max_protected_backups)];
          });
        }
      }
      await check("Docker engine", async () => {
        await ctx.engine.ping();
        return `answers on ${config.docker.socket}`;
      });
      await check("compose", async () => {
        const tool = await detectCompose({ dockerSocket: config.docker.socket });
        return `${tool.argv.join(" ")} ${tool.version} (${tool.kind})`;
      });
    } finally {
      await ctx.close();
    }
  }
  if (config.hub) await checkHub(config.hub, config.pve.request_timeout_seconds * 1000, check);
  report(findings, values.json === true);
  return findings.some((f) => f.level === "error") ? ExitCode.failed : ExitCode.ok;
}

/**
 * What `run` refuses to start with (the credential file's mode, an unreadable CA: HubClient.open) and what
 * would keep the link down once it runs (reachability, TLS, a refused credential).
 */
async function checkHub(
  hub: NonNullable<AgentConfig["hub"]>,
  timeoutMs: number,
  check: (what: string, fn: () => Promise<string>) => Promise<void>,
): Promise<void> {
  let credential: Secret | undefined;
  let ca: Buffer | undefined;
  await check("hub credential", async () => {
    credential = await readSecretFile(hub.credential_file, "hub credential");
    return `${hub.credential_file} (readable by root only)`;
  });
  if (hub.ca_file !== undefined) {
    const file = hub.ca_file;
    await check("hub CA", async () => {
      ca = await readHubCa(file);
      return file;
    });
  }
  if (!credential || (hub.ca_file !== undefined && !ca)) return;
  const secret = credential;
  await check(`hub ${hub.url}`, () =>
    probeHub({ url: hub.url, credential: secret, ...(ca ? { ca } : {}), timeoutMs }),
  );
}

function report(findings: Finding[], json: boolean): void {
  if (json) printJson(findings);
  else {
    for (const f of findings)
      process.stdout.write(`${MARK[f.level]}  ${f.message}\n${f.hint ? `      → ${f.hint}\n` : ""}`);
  }
}
