import { uptime } from "node:os";
import type { CommandOf, CommandResultData, Event } from "@felhom/protocol";
import type { BackupService } from "../backup/backup-service.ts";
import { readLastBackup } from "../backup/last-backup.ts";
import { backupIdFromNotes } from "../backup/notes.ts";
import type { IdentityGate } from "../boot/start-up.ts";
import type { CommandHandlers } from "../hub/command-runner.ts";
import { CommandError } from "../hub/command-runner.ts";
import type { StatusBody, StatusPayload } from "../hub/hub-client.ts";
import type { Identity } from "../identity/decide-identity.ts";
import { resolveIdentity } from "../identity/identity-service.ts";
import { describeError } from "../lib/errors.ts";
import { OperationBusyError, withOperationLock } from "../operation/operation-lock.ts";
import { discoverStacks } from "../quiesce/discover-stacks.ts";
import { bringStacksUp } from "../restore/stacks-up.ts";
import {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  newOperationId,
} from "../snapshot/snapshot-service.ts";
import { AGENT_VERSION } from "../version.ts";
import type { AgentContext } from "./context.ts";
import { busyError, refuseWhileBusy } from "./refuse-while-busy.ts";

/**
 * The hub's commands, dispatched to the same services the CLI uses. The set is closed by the protocol;
 * nothing here runs anything the hub names. Long operations answer once started; their outcome comes
 * as events.
 */
export function hubHandlers(o: {
  ctx: AgentContext;
  backups: BackupService;
  emit: (e: Event) => void;
  status: () => Promise<StatusBody>;
  /** The start-up decision's verdict (agent/boot): while set, every PVE write is refused. */
  gate: () => IdentityGate | undefined;
  /** Enrolls with the new token and switches the daemon over to it (daemon.ts). */
  enroll: (params: CommandOf<"enroll">["params"]) => Promise<CommandResultData<"enroll">>;
  reload: () => Promise<CommandResultData<"config.reload">>;
  /**
   * Snapshot operations outlive their command: `signal` is the daemon's shutdown (the snapshot then
   * resumes its stacks at once), `track` lets the daemon wait for them before it exits or swaps runtimes.
   */
  background: { signal: AbortSignal; track: (operation: Promise<unknown>) => void };
}): CommandHandlers {
  const { ctx, backups, emit } = o;
  const deps = ctx.operationDeps(emit);
  const verifiedOrRefuse = async () => {
    const gate = o.gate();
    if (gate) {
      throw new CommandError("identity_unverified", `${gate.reason} (${gate.hint})`.slice(0, 2000), {
        details: { identityState: gate.state },
      });
    }
    // A PVE failure is answered by what it is (pve_auth, pve_unreachable, …: command-errors.ts).
    const identity = await resolveIdentity(ctx.pve, {
      configuredVmid: ctx.config.pve.vmid,
      local: deps.localFacts(),
    });
    if (identity.state !== "verified") {
      throw new CommandError("identity_unverified", identity.reason, {
        details: { identityState: identity.state },
      });
    }
    return identity;
  };
  /**
   * PVE is busy with the guest (another backup, a snapshot, a migration): the hub hears it as the command's
   * answer, before anything is quiesced. The operation checks again itself (a lock may come meanwhile).
   */
  const refuseIfLocked = async ({ node, vmid }: { node: string; vmid: number }) => {
    const { lock } = await ctx.pve.lxcStatus(node, vmid);
    if (lock) {
      throw new CommandError("pve_guest_locked", `CT ${vmid} is locked (${lock}): PVE is busy with it`, {
        details: { lock },
      });
    }
  };
  /** A verified, unlocked guest and its snapshots: what both snapshot commands check before they start. */
  const snapshotsOfSelf = async () => {
    const identity = await verifiedOrRefuse();
    await refuseIfLocked(identity);
    return (await ctx.pve.snapshots(identity.node, identity.vmid)).map((s) => s.name);
  };
  return {
    "backup.run": async ({ mode }, { id }) => {
      await refuseWhileBusy(ctx.config.state_dir, "try again");
      await refuseIfLocked(await verifiedOrRefuse());
      // The daemon's shutdown, as for a scheduled backup: the command's own signal fires only once the
      // link stops, after the daemon has waited for this backup — a stop-mode backup would hold the
      // guest's shutdown (which it is waiting for) until systemd kills the agent.
      const ticket = await backups.request({
        mode,
        trigger: { source: "hub", commandId: id },
        signal: o.background.signal,
      });
      // Something took the guest between the check above and the request.
      if (!ticket.started) throw busyError(ticket.holder, "try again");
      return { backupId: ticket.backupId, mode };
    },
    "status.get": () => o.status(),
    "backups.list": async () => {
      const identity = await verifiedOrRefuse();
      const volumes = await ctx.pve.backups(identity.node, ctx.config.backup.storage, identity.vmid);
      return {
        storage: ctx.config.backup.storage,
        backups: volumes.map((v) => ({
          volid: v.volid,
          sizeBytes: v.size,
          createdAt: new Date((v.ctime ?? 0) * 1000).toISOString(),
          notes: v.notes?.slice(0, 1000) ?? null,
          backupId: backupIdFromNotes(v.notes) ?? null,
          protected: v.protected,
        })),
      };
    },
    "snapshot.list": async () =>
      ({
        snapshots: (await listSnapshots(deps)).map((s) => ({
          name: s.name,
          description: (s.description ?? "").slice(0, 1000),
          takenAt: s.snaptime ? new Date(s.snaptime * 1000).toISOString() : null,
          parent: s.parent ?? null,
        })),
      }) satisfies CommandResultData<"snapshot.list">,
    "snapshot.create": async ({ name, description }) => {
      await refuseWhileBusy(ctx.config.state_dir, "try again");
      if ((await snapshotsOfSelf()).includes(name)) {
        throw new CommandError(
          "already_exists",
          `CT snapshot "${name}" exists already; nothing was quiesced`,
          {
            details: { name },
          },
        );
      }
      const operationId = newOperationId();
      o.background.track(
        createSnapshot(deps, name, { description, operationId, signal: o.background.signal }).then((r) =>
          emit(r.ok ? { kind: "snapshot.created", ...r.result } : { kind: "snapshot.failed", ...r.failure }),
        ),
      );
      return { operationId, name };
    },
    "snapshot.delete": async ({ name }) => {
      await refuseWhileBusy(ctx.config.state_dir, "try again");
      if (!(await snapshotsOfSelf()).includes(name)) {
        throw new CommandError("not_found", `CT snapshot "${name}" does not exist; nothing was deleted`, {
          details: { name },
        });
      }
      const operationId = newOperationId();
      o.background.track(
        deleteSnapshot(deps, name, { operationId, signal: o.background.signal }).then((r) =>
          emit(r.ok ? { kind: "snapshot.deleted", ...r.result } : { kind: "snapshot.failed", ...r.failure }),
        ),
      );
      return { operationId, name };
    },
    // Never while a backup has stacks quiesced: `up -d` would start them in the middle of it.
    "stacks.up": async ({ projects }, { id }) => {
      await refuseWhileBusy(ctx.config.state_dir, "try again");
      // Without the engine every stack would come back "failed" one by one: say what is wrong instead.
      await ctx.engine.ping();
      // Held for the whole `up -d` (health waits included): a backup must not quiesce meanwhile.
      const me = { kind: "stacks-up", operationId: id } as const;
      const stacks = await withOperationLock(ctx.config.state_dir, me, "stacks up", () =>
        bringStacksUp(
          {
            engine: ctx.engine,
            stateDir: ctx.config.state_dir,
            log: ctx.log,
            configuredProjects: ctx.config.docker.projects,
          },
          projects,
        ),
      ).catch((err) => {
        // Taken between the check and the lock: answer as the check would.
        throw err instanceof OperationBusyError ? busyError(err.holder, "try again") : err;
      });
      return { stacks };
    },
    enroll: (params) => o.enroll(params),
    "config.reload": () => o.reload(),
  };
}

/** The periodic status and `status.get`: identity, stacks and their state, the last backup, what runs now. */
export function statusProvider(
  ctx: AgentContext,
  backups: BackupService,
  nextRun: () => Date | null,
  gate: () => IdentityGate | undefined = () => undefined,
): () => Promise<StatusPayload> {
  return async () => {
    const local = ctx.operationDeps(() => {}).localFacts();
    const live: Identity = await resolveIdentity(ctx.pve, {
      configuredVmid: ctx.config.pve.vmid,
      local,
    }).catch((err) => ({
      state: "unverified" as const,
      signal: "vmid-missing" as const,
      reason: describeError(err),
      hint: "",
    }));
    // A restored copy may look verified to the live check (same MAC, hostname, token): the gate decides.
    const state = gate()?.state ?? live.state;
    const stacks = await discoverStacks(ctx.engine, ctx.config.docker.projects).catch(() => []);
    const last = await readLastBackup(ctx.config.state_dir).catch(() => undefined);
    const running = backups.running();
    return {
      // One definition (PROTOCOL.md, hello): vmid/node are the CT the identity check is about, whatever
      // its verdict; hostname is this system's own, the name the check compares with the CT config's.
      identity: {
        state,
        vmid: live.vmid ?? null,
        node: live.node ?? null,
        hostname: local.hostname,
      },
      agentVersion: AGENT_VERSION,
      uptimeSeconds: Math.floor(uptime()),
      stacks: stacks.slice(0, 256).map((st) => {
        const states = st.services.flatMap((s) => s.containers.map((c) => c.state));
        const running = states.filter((s) => s === "running").length;
        return {
          project: st.project,
          state: running === states.length ? "running" : running === 0 ? "stopped" : "partial",
          services: st.services.slice(0, 256).map((s) => ({
            name: s.name,
            state: s.containers[0]?.state ?? "missing",
            quiesce:
              (s.containers[0]?.labels["felhom.quiesce"] as "stop" | "pause" | "exec" | "none" | undefined) ??
              "stop",
          })),
        };
      }),
      lastBackup: last
        ? {
            backupId: last.outcome.ok ? last.outcome.result.backupId : last.outcome.failure.backupId,
            mode: last.outcome.ok ? last.outcome.result.mode : last.outcome.failure.mode,
            ok: last.outcome.ok,
            finishedAt: last.finishedAt,
            volid: last.outcome.ok ? last.outcome.result.volid : null,
            sizeBytes: last.outcome.ok ? last.outcome.result.sizeBytes : null,
            downtimeMs: last.outcome.ok
              ? Math.max(0, ...last.outcome.result.downtime.map((d) => d.downtimeMs))
              : null,
          }
        : null,
      nextScheduledRun: nextRun()?.toISOString() ?? null,
      runningOperation: running ? { kind: "backup", id: running.backupId } : null,
    } satisfies StatusPayload;
  };
}
