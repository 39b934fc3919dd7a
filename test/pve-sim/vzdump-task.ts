import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { archiveSuffix, type Compression, writeArchive } from "./archive.ts";
import { backupBaseName, listBackups, setBackupNotes, setBackupProtected } from "./backup-files.ts";
import { type Guest, hostnameOf, renderConfig, type Storage } from "./cluster-model.ts";
import { sh } from "./exec.ts";
import { PveHttpError } from "./http-error.ts";
import { mountPointsOf } from "./mount-points.ts";
import { archiveToPbs } from "./pbs-archive.ts";
import { pbsSnapshotExists, pbsSnapshotName, removePbsSnapshot } from "./pbs-store.ts";
import {
  isKeepAll,
  type KeepOptions,
  keepToString,
  markBackups,
  type PruneEntry,
  parseKeep,
} from "./prune.ts";
import type { PveSimulator, VzdumpRun } from "./simulator.ts";
import { type TaskContext, TaskError, TaskExit, type TaskWorker } from "./task-registry.ts";
import { decodeUpid } from "./upid.ts";

/** A vzdump job after the POST-time checks (pve-manager VZDump.pm). */
export interface VzdumpJob {
  node: string;
  /** Local and orphaned vmids, sorted. */
  vmids: number[];
  /** vmids on other nodes (logged as skipped). */
  skiplist: number[];
  all: boolean;
  storageId: string;
  mode: "snapshot" | "stop" | "suspend";
  compression: Compression | "lzo";
  zstdThreads: number;
  ionice: number;
  bwlimit?: number;
  /** minutes */
  lockwait: number;
  notesTemplate?: string;
  protected: boolean;
  remove: boolean;
  pruneBackups?: KeepOptions;
  notificationMode?: string;
  mailnotification?: string;
  mailto?: string[];
  cmdline: string;
  user: string;
}

/**
 * VZDump.pm `send_notification`: `mailto` and `mailnotification` fall back to /etc/vzdump.conf (VZDump->new
 * fills unset options from it). `auto` mails directly when a mailto is configured, else it goes through
 * the notification system; `legacy-sendmail` only ever mails, and only when a mailto is configured (the
 * policy `failure` skips successes); `notification-system` always notifies (severity info or error).
 */
function sendNotification(
  sim: PveSimulator,
  job: VzdumpJob,
  upid: string,
  outcome: { failed: boolean; err?: string },
): void {
  const mailto = job.mailto ?? sim.vzdumpConf.mailto;
  const policy = job.mailnotification ?? sim.vzdumpConf.mailnotification ?? "always";
  const mode = job.notificationMode ?? "auto";
  const { failed, err } = outcome;
  const severity = failed ? "error" : "info";
  const statusText = failed ? `backup failed${err ? `: ${err}` : ""}` : "backup successful";
  const email = mailto !== undefined && mailto.length > 0;
  if ((mode === "auto" && email) || mode === "legacy-sendmail") {
    if (email && (policy === "always" || (policy === "failure" && failed)))
      sim.notifications.push({ upid, severity, via: "sendmail", to: mailto, statusText });
  } else {
    sim.notifications.push({ upid, severity, via: "notification-system", statusText });
  }
}

const LOCKFILE = "/var/run/vzdump.lock";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function localTimestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** VZDump.pm `format_size`. */
export function formatSize(size: number): string {
  const kb = size / 1024;
  if (kb < 1024) return `${Math.floor(kb)}KB`;
  const mb = size / 1024 ** 2;
  if (mb < 1024) return `${Math.floor(mb)}MB`;
  const gb = mb / 1024;
  if (gb < 1024) return `${gb.toFixed(2)}GB`;
  return `${(gb / 1024).toFixed(2)}TB`;
}

/** VZDump.pm `format_time`. */
function formatTime(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

/** The notes template with `\n`/`\\` escapes and {{vars}} expanded (VZDump.pm `$generate_notes`). */
export function expandNotes(template: string, vars: Record<string, string>): string {
  return template
    .replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c))
    .replace(/\{\{([^\s{}]+)\}\}/g, (m, v: string) => vars[v] ?? m);
}

export function vzdumpWorker(sim: PveSimulator, job: VzdumpJob): TaskWorker {
  return async (ctx) => {
    // VZDump->new collects these and dies with all of them (newlines become spaces in the TASK line)
    const storage = sim.storages.get(job.storageId);
    const id = job.storageId;
    if (!storage)
      throw new TaskError(
        `could not activate storage '${id}': storage '${id}' does not exist\ncould not get storage information for '${id}': storage '${id}' does not exist`,
      );
    if (!storage.content.includes("backup"))
      throw new TaskError(
        `could not get storage information for '${id}': can't use storage '${id}' for backups - wrong content type`,
      );
    const lock = sim.nodeLock(job.node);
    // the kernel drops the flock when the worker dies, even by SIGKILL
    void ctx.task.done.then(() => lock.release(ctx.upid));
    // getlock: flock with an alarm of lockwait minutes
    if (!lock.tryAcquire(ctx.upid)) {
      if (job.lockwait === 0) {
        // getlock dies, the API worker catches it, notifies and exit(-1)s: no TASK line
        await ctx.log(`ERROR: can't acquire lock '${LOCKFILE}' (wait = 0)`);
        sendNotification(sim, job, ctx.upid, {
          failed: true,
          err: `can't acquire lock '${LOCKFILE}' (wait = 0)`,
        });
        throw new TaskExit();
      }
      await ctx.log("INFO: trying to get global lock - waiting...");
      const got = await lock.acquire(ctx.upid, job.lockwait * sim.opts.lockwaitScaleMs, ctx.signal);
      if (
        !got &&
        ctx.signal.aborted &&
        sim.taskRegistry.takeFailure(ctx.task, "grant-lock-on-stop") !== undefined
      )
        return grantedWhileStopped(sim, job, ctx, lock);
      if (!got) {
        const why = ctx.signal.aborted ? "interrupted by signal" : "got timeout";
        await ctx.log(`ERROR: can't acquire lock '${LOCKFILE}' - ${why}`);
        sendNotification(sim, job, ctx.upid, {
          failed: true,
          err: `can't acquire lock '${LOCKFILE}' - ${why}`,
        });
        throw new TaskExit(); // exit(-1): no TASK line, exitstatus "unexpected status"
      }
      await ctx.log("INFO: got global lock");
    }
    try {
      await ctx.log(`INFO: starting new backup job: ${job.cmdline}`);
      if (job.skiplist.length > 0) await ctx.log(`INFO: skip external VMs: ${job.skiplist.join(", ")}`);
      const todo: number[] = [];
      for (const vmid of job.vmids) {
        const g = sim.guests.get(vmid);
        if (g && g.node === job.node) {
          if (!sim.access.has(job.user, `/vms/${vmid}`, "VM.Backup")) {
            if (job.all) continue;
            throw new TaskError(`403 Permission check failed (/vms/${vmid}, VM.Backup)`);
          }
        }
        todo.push(vmid);
      }
      let errors = 0;
      for (const vmid of todo) {
        const outcome = await backupGuest(sim, job, storage, vmid, ctx);
        if (outcome === "interrupted") {
          // exec_backup_task re-dies on a signal: the whole job fails with it
          await ctx.log("ERROR: Backup job failed - interrupted by signal").catch(() => {});
          throw new TaskError("interrupted by signal");
        }
        if (outcome === "error") errors++;
      }
      // exec_backup notifies once every guest is done, before it dies with "job errors"
      if (errors) {
        await ctx.log("INFO: Backup job finished with errors");
        sendNotification(sim, job, ctx.upid, { failed: true });
        throw new TaskError("job errors");
      }
      await ctx.log("INFO: Backup job finished successfully");
      sendNotification(sim, job, ctx.upid, { failed: false });
    } finally {
      lock.release(ctx.upid);
    }
  };
}

/**
 * The lock race (faults.grantLockOnStop): flock returned just as the stop request's SIGTERM was sent. The
 * job starts, the guest's backup takes `lock: backup` (VZDump.pm `exec_backup_task`, LXC.pm `lock_vm`),
 * the signal's die lands there and the clean-up hangs (a storage command that does not return) until
 * pvedaemon's SIGKILL 5 s later (RESTEnvironment.pm `check_worker`): no TASK line, the lock stays.
 */
async function grantedWhileStopped(
  sim: PveSimulator,
  job: VzdumpJob,
  ctx: TaskContext,
  lock: ReturnType<PveSimulator["nodeLock"]>,
): Promise<never> {
  lock.handOver(ctx.upid);
  const say = (line: string) => ctx.log(line).catch(() => {}); // the interrupt is delivered at the first
  await say("INFO: got global lock");
  await say(`INFO: starting new backup job: ${job.cmdline}`);
  const vmid = job.vmids[0]!;
  await say(`INFO: Starting Backup of VM ${vmid} (lxc)`);
  const g = sim.guests.get(vmid);
  if (g) g.lock = "backup";
  await say(`ERROR: Backup of VM ${vmid} failed - interrupted by signal`);
  return new Promise<never>(() => {});
}

/** exec_backup_task for one LXC guest: "error" is logged and the job goes on; "interrupted" ends the job. */
async function backupGuest(
  sim: PveSimulator,
  job: VzdumpJob,
  storage: Storage,
  vmid: number,
  ctx: TaskContext,
): Promise<"ok" | "error" | "interrupted"> {
  const fileLines: string[] = [];
  const log = async (level: "INFO" | "ERROR" | "WARN", msg: string) => {
    fileLines.push(`${localTimestamp()} ${level}: ${msg}`);
    if (level === "WARN") await ctx.warn(msg);
    else await ctx.log(`${level}: ${msg}`);
  };
  const g = sim.guests.get(vmid);
  const started = Date.now();
  const run: VzdumpRun = { upid: ctx.upid, vmid, mode: job.mode };
  const cleanup: {
    unlock?: boolean;
    snapshotPath?: string;
    restart?: boolean;
    stoppedAt?: number;
    tmp?: string;
    configDir?: string;
    suspendCopy?: string;
  } = {};
  let basename: string | undefined;
  let err: unknown;
  try {
    if (!g || g.node !== job.node) throw new Error(`unable to find VM '${vmid}'`);
    sim.vzdumpRuns.push(run);
    // exec_backup_task's checks before any log line: HA + stop mode, then the backup-count limits
    if (job.mode === "stop" && g.haManaged)
      throw new Error(
        "Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service.",
      );
    const keep = retentionOf(job, storage);
    const backupLimit = keep["keep-all"] ? 0 : Object.values(keep).reduce((a, b) => a + (b ?? 0), 0);
    if ((backupLimit && !job.remove) || job.protected) {
      const own = (await listBackups(storage)).filter((b) => b.vmid === vmid && b.subtype === "lxc");
      const count = own.filter((b) => !b.protected).length;
      if (job.protected) {
        const max =
          storage.maxProtectedBackups ??
          (sim.access.has(job.user, `/storage/${storage.id}`, "Datastore.Allocate") ? -1 : 5);
        if (max > -1 && own.length - count >= max)
          throw new Error(
            `The number of protected backups per guest is limited to ${max} on storage '${storage.id}'`,
          );
      } else if (count >= backupLimit) {
        throw new Error(
          `There is a max backup limit of ${backupLimit} enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.`,
        );
      }
    }
    let backupTime = new Date();
    // Archive names carry seconds: a second backup of the same guest in the same second waits for the next one.
    const taken = (at: Date) =>
      storage.type === "pbs"
        ? pbsSnapshotExists(storage, pbsSnapshotName(vmid, Math.floor(at.getTime() / 1000)))
        : exists(join(storage.path, "dump", `${backupBaseName(vmid, at)}${archiveSuffixOf(job)}`));
    while (await taken(backupTime)) {
      await sleep(1000 - (Date.now() % 1000) + 5);
      backupTime = new Date();
    }
    basename = backupBaseName(vmid, backupTime);
    await log("INFO", `Starting Backup of VM ${vmid} (lxc)`);
    await log("INFO", `Backup started at ${localTimestamp(backupTime)}`);
    const running = g.running;
    await log("INFO", `status = ${running ? "running" : "stopped"}`);
    if (g.lock) throw new Error(`CT is locked (${g.lock})`);
    g.lock = "backup";
    cleanup.unlock = true;
    // VZDump.pm exec_backup_task: `my $mode = $running ? $task->{mode} : 'stop'`
    let mode = running ? job.mode : "stop";
    run.mode = mode;
    // VZDump/LXC.pm `prepare`: one line per mount point, in config order; excluded ones become exclude dirs
    const mountPoints = mountPointsOf(g.config);
    const prepare = async () => {
      await log("INFO", `CT Name: ${hostnameOf(g)}`);
      for (const m of mountPoints) {
        if (m.included) await log("INFO", `including mount point ${m.key} ('${m.mp}') in backup`);
        else
          await log("INFO", `excluding ${m.type} mount point ${m.key} ('${m.mp}') from backup (${m.reason})`);
      }
      if (mode !== "snapshot") return;
      // LXC.pm `prepare` asks has_feature('snapshot', …, $backup_only = 1): only the mount points in the
      // backup count (a bind mount or a backup=0 volume does not stop a snapshot here, unlike `vm_feature`)
      if (sim.snapshotBlockers(g, true).length > 0)
        throw new Error("mode failure - some volumes do not support snapshots");
      if (g.snapshots.has("vzdump")) {
        await log("INFO", "found old vzdump snapshot (force removal)");
        await sim.volumes.remove((g.snapshots.get("vzdump") as { path: string }).path);
        g.snapshots.delete("vzdump");
      }
    };
    if (mode === "snapshot") {
      // exec_backup_task: a `mode failure` from the first prepare is logged (debugmsg chomps it) and the
      // guest is backed up in suspend mode instead; prepare runs again in the suspend branch below
      try {
        await prepare();
      } catch (e) {
        if (!(e as Error).message.startsWith("mode failure")) throw e;
        await log("INFO", (e as Error).message);
        await log("INFO", "trying 'suspend' mode instead");
        mode = "suspend";
        run.mode = mode;
      }
    }
    await log("INFO", `backup mode: ${mode}`);
    if (job.bwlimit) await log("INFO", `bandwidth limit: ${job.bwlimit} KB/s`);
    await log("INFO", `ionice priority: ${job.ionice}`);
    let source = g.rootDir;
    if (mode === "stop") {
      await prepare();
      if (running) {
        await log("INFO", "stopping virtual guest");
        const stopAsked = Date.now();
        // a throwing hook stands for `lxc-stop` failing (e.g. "container did not stop"): no restart is owed then
        await sim.opts.onGuestStop?.(vmid, { kill: false });
        g.running = false;
        cleanup.stoppedAt = stopAsked;
        run.guestStoppedAt = Date.now();
        cleanup.restart = true;
      }
    } else if (mode === "suspend") {
      await prepare();
      const copy = sim.volumes.snapshotPath(`vzdumptmp-${vmid}-${Date.now()}`);
      cleanup.suspendCopy = copy;
      source = await suspendModeCopy(sim, { g, vmid, storage, basename, ctx, log, run, copy });
    } else {
      // VZDump.pm exec_backup_task: with more than one volume to snapshot ($task->{snapshot_count}, the
      // included volumes), the whole CT is frozen (`suspend_vm`) before the snapshot step
      const frozen = mountPoints.filter((m) => m.included).length > 1;
      let frozenAt = 0;
      const freeze = guestFreeze(sim, vmid, run, ctx.upid);
      try {
        if (frozen) {
          await log("INFO", "suspend vm to make snapshot");
          frozenAt = Date.now();
          run.guestStoppedAt = frozenAt;
          await freeze.freeze();
        }
        // VZDump/LXC.pm `snapshot` logs the line, then AbstractConfig.pm `snapshot_create` freezes a running CT
        // (LXC/Config.pm `__snapshot_check_freeze_needed` says yes whenever it runs, one volume or several;
        // `__snapshot_freeze`: PVE::LXC::freeze, `sync_container_namespace`, fsfreeze) for the volume
        // snapshots: the line is the last one a guest-side reader can see before the snapshot exists
        await log("INFO", "create storage snapshot 'vzdump'");
        g.lock = "snapshot";
        await freeze.freeze();
        await sleep(sim.opts.snapshotDelayMs);
        const snapshotFailure = sim.taskRegistry.takeFailure(ctx.task, "snapshot-fail");
        if (snapshotFailure === undefined) {
          const path = sim.volumes.snapshotPath(`vzdump-${vmid}-${Date.now()}`);
          const t0 = Date.now();
          await sim.volumes.snapshot(g.rootDir, path, true);
          run.snapshotTakenAt = Date.now();
          run.snapshotDurationMs = run.snapshotTakenAt - t0;
          run.snapshotMethod = sim.volumes.method;
          cleanup.snapshotPath = path;
          g.snapshots.set("vzdump", {
            name: "vzdump",
            description: "vzdump backup snapshot",
            snaptime: Math.floor(Date.now() / 1000),
            ...(g.parent ? { parent: g.parent } : {}),
            path,
            config: { ...g.config },
          });
          source = path;
          // the storage plugin's own output, unprefixed, as lvcreate prints it on LVM-thin (the default
          // install), while the CT is still frozen
          if (sim.opts.rawStorageOutput)
            await ctx.log(`  Logical volume "snap_vm-${vmid}-disk-0_vzdump" created.`);
        }
        // `snapshot_create` thaws (`__snapshot_freeze($vmid, 1)`) whether the volume snapshots worked or not,
        // before its own error handling; with several volumes this already thaws the CT that `suspend_vm`
        // froze (the cgroup freezer is a switch, not a count), so `resume vm` below finds it thawed
        await freeze.thaw();
        if (snapshotFailure !== undefined) {
          fileLines.push("snapshot create failed: starting cleanup");
          await ctx.log("snapshot create failed: starting cleanup");
          throw new Error(snapshotFailure);
        }
        g.lock = "backup";
      } finally {
        await freeze.thaw();
      }
      await sleep(sim.opts.snapshotMountDelayMs);
      if (frozen) {
        await log("INFO", "resume vm");
        run.guestStartedAt = Date.now();
        await log("INFO", `guest is online again after ${onlineAgainAfter(frozenAt)} seconds`);
      }
    }
    const excludeDirs = mountPoints.filter((m) => !m.included).map((m) => m.mp);
    const injected = sim.taskRegistry.takeFailure(ctx.task, "fail");
    const warning = sim.taskRegistry.takeFailure(ctx.task, "warn");
    if (storage.type === "pbs") {
      await archiveToPbs(sim, {
        g,
        storage,
        vmid,
        backupTime: Math.floor(backupTime.getTime() / 1000),
        mode,
        source,
        excludeDirs,
        includedMps: mountPoints.filter((m) => m.included).map((m) => m.mp),
        ctx,
        log,
        run,
        ...(injected !== undefined ? { failure: injected } : {}),
      });
      if (warning) await log("WARN", warning);
    } else {
      const suffix = archiveSuffixOf(job);
      const dumpdir = join(storage.path, "dump");
      await mkdir(dumpdir, { recursive: true });
      const target = join(dumpdir, `${basename}${suffix}`);
      const tmp = target.replace(/\.[^.]+$/, ".dat");
      cleanup.tmp = tmp;
      await log("INFO", `creating vzdump archive '${target}'`);
      if (job.compression === "lzo")
        throw new Error("lzop is not available in the PVE simulator (use zstd or gzip)");
      // vzdump's tmpdir on a POSIX dumpdir: <dumpdir>/<basename>.tmp, holding ./etc/vzdump/pct.conf for tar
      cleanup.configDir = join(dumpdir, `${basename}.tmp`);
      await mkdir(join(cleanup.configDir, "etc", "vzdump"), { recursive: true });
      await writeFile(join(cleanup.configDir, "etc", "vzdump", "pct.conf"), renderConfig(g.config));
      await writeFile(join(cleanup.configDir, "etc", "vzdump", "pct.fw"), ""); // no firewall config: an empty one
      run.archiveStartedAt = Date.now();
      const result = await writeArchive({
        configDir: cleanup.configDir,
        sourceDir: source,
        excludeDirs,
        target: tmp,
        compression: job.compression,
        zstdThreads: job.zstdThreads,
        bytesPerSecond: sim.opts.archiveBytesPerSecond,
        signal: ctx.signal,
      });
      if (ctx.signal.aborted) throw new Error("interrupted by signal");
      if (injected) throw new Error(injected);
      if (warning) await log("WARN", warning);
      await log("INFO", result.totalsLine);
      await rename(tmp, target);
      delete cleanup.tmp;
      run.archiveFinishedAt = Date.now();
      run.archivePath = target;
      run.bytesWritten = result.bytesWritten;
      run.volid = `${storage.id}:backup/${basename}${suffix}`;
      await log("INFO", `archive file size: ${formatSize((await stat(target)).size)}`);
    }
    const backup = (await listBackups(storage)).find((b) => b.volid === run.volid);
    if (job.notesTemplate) {
      await log("INFO", "adding notes to backup");
      const notesFailure = sim.taskRegistry.takeFailure(ctx.task, "notes-fail");
      const notes = expandNotes(job.notesTemplate, {
        cluster: sim.opts.clusterName ?? "standalone node",
        guestname: hostnameOf(g),
        node: job.node,
        vmid: String(vmid),
      });
      if (notesFailure !== undefined) await log("WARN", `unable to add notes - ${notesFailure}`);
      else if (backup) await setBackupNotes(storage, backup, notes);
    }
    if (job.protected && backup) {
      await log("INFO", "marking backup as protected");
      await setBackupProtected(storage, backup, true);
    }
    // VZDump->new: "avoid triggering any remove code path if keep-all is set"
    if (job.remove && !keep["keep-all"]) {
      await log("INFO", `prune older backups with retention: ${keepToString(keep, ", ")}`);
      const marked = isKeepAll(keep)
        ? []
        : markBackups(await listBackups(storage), keep, { vmid, type: "lxc" });
      let pruned = 0;
      if (storage.type === "pbs") {
        pruned = await prunePbsGroups(storage, marked, (line) => log("INFO", line), [`ct/${vmid}`]);
      } else {
        for (const r of marked.filter((m) => m.mark === "remove")) {
          await log("INFO", `removing backup '${r.volid}'`);
          await removeArchive(storage, r.volid);
          pruned++;
        }
      }
      await log(
        "INFO",
        `pruned ${pruned} backup(s)${pruned > 0 ? " not covered by keep-retention policy" : ""}`,
      );
    }
  } catch (e) {
    // SIGTERM from a task stop: whatever was running (tar, a hook) dies, vzdump reports the signal
    err = ctx.signal.aborted ? new Error("interrupted by signal") : e;
  }
  // clean-up, in VZDump.pm's order: unlock, plugin cleanup (snapshot), restart
  if (g && cleanup.unlock) delete g.lock;
  if (g && cleanup.snapshotPath) {
    await logQuiet(ctx, fileLines, "INFO", "cleanup temporary 'vzdump' snapshot");
    await sleep(sim.opts.snapshotRemoveDelayMs);
    await sim.volumes.remove(cleanup.snapshotPath).catch(() => {});
    g.snapshots.delete("vzdump");
    if (sim.opts.rawStorageOutput)
      await logQuiet(
        ctx,
        fileLines,
        "",
        `  Logical volume "snap_vm-${vmid}-disk-0_vzdump" successfully removed.`,
      );
  }
  if (g && cleanup.restart) {
    await logQuiet(ctx, fileLines, "INFO", "restarting vm");
    try {
      await sim.opts.onGuestStart?.(vmid);
      g.running = true;
      g.startedAt = Date.now();
      run.guestStartedAt = g.startedAt;
      await logQuiet(
        ctx,
        fileLines,
        "INFO",
        `guest is online again after ${onlineAgainAfter(cleanup.stoppedAt ?? Date.now())} seconds`,
      );
    } catch (e) {
      await logQuiet(ctx, fileLines, "", (e as Error).message); // a plain perl `warn`: no prefix, not counted
    }
  }
  if (cleanup.suspendCopy) await sim.volumes.remove(cleanup.suspendCopy).catch(() => {});
  if (cleanup.tmp) await rm(cleanup.tmp, { force: true });
  if (cleanup.configDir) await rm(cleanup.configDir, { recursive: true, force: true });
  if (err) {
    const msg = err instanceof PveHttpError ? `${err.status} ${err.message}` : (err as Error).message;
    await logQuiet(ctx, fileLines, "ERROR", `Backup of VM ${vmid} failed - ${msg}`);
    await logQuiet(ctx, fileLines, "INFO", `Failed at ${localTimestamp()}`);
  } else {
    await logQuiet(
      ctx,
      fileLines,
      "INFO",
      `Finished Backup of VM ${vmid} (${formatTime(Math.floor((Date.now() - started) / 1000))})`,
    );
    await logQuiet(ctx, fileLines, "INFO", `Backup finished at ${localTimestamp()}`);
  }
  // VZDump.pm: a PBS backup's log is uploaded into its snapshot (`upload-log`), and only when it succeeded
  if (storage.type === "pbs") {
    if (!err && run.volid)
      await writeFile(join(dirname(run.archivePath!), "client.log.blob"), `${fileLines.join("\n")}\n`).catch(
        () => {},
      );
  } else if (basename)
    await writeFile(join(storage.path, "dump", `${basename}.log`), `${fileLines.join("\n")}\n`).catch(
      () => {},
    );
  if (!err) return "ok";
  return ctx.signal.aborted ? "interrupted" : "error";
}

/**
 * The CT's cgroup freezer (pve-container LXC.pm `freeze`/`thaw`: `lxc-freeze` through the monitor on cgroup
 * v2): a switch, so a second freeze of a frozen CT changes nothing and one thaw ends both. Every run of the
 * hooks is recorded in `run.freezes`; `thaw` is a no-op unless frozen, so a `finally` can always call it.
 */
function guestFreeze(sim: PveSimulator, vmid: number, run: VzdumpRun, upid: string) {
  let current: { frozenAt: number; thawedAt?: number } | undefined;
  return {
    async freeze(): Promise<void> {
      if (current) return;
      current = { frozenAt: Date.now() };
      run.freezes = [...(run.freezes ?? []), current];
      await sim.opts.onGuestFreeze?.(vmid, { upid });
    },
    async thaw(): Promise<void> {
      if (!current) return;
      current.thawedAt = Date.now();
      current = undefined;
      await sim.opts.onGuestThaw?.(vmid, { upid });
    },
  };
}

/** Logging during clean-up: an interrupt delivered here must not skip the rest of the clean-up. */
async function logQuiet(ctx: TaskContext, fileLines: string[], level: string, msg: string): Promise<void> {
  fileLines.push(level ? `${localTimestamp()} ${level}: ${msg}` : msg);
  await ctx.log(level ? `${level}: ${msg}` : msg).catch(() => {});
}

/**
 * Suspend mode's copy (VZDump.pm exec_backup_task, `elsif ($mode eq 'suspend')`; pve-container
 * VZDump/LXC.pm `copy_data_phase1`/`copy_data_phase2`/`rsync_vm`/`suspend_vm`): a first rsync of the
 * running guest's root (`/proc/<pid>/root/`) into vzdump's tmpdir, which exec_backup_task empties every
 * run (`rmtree $task->{tmpdir}`), so always a full copy; `suspending guest` and the CT frozen
 * (`PVE::LXC::freeze`, the agent too) for the final rsync; `resuming guest`, the thaw, and
 * `$log_vm_online_again`. The "rsync" is a writable btrfs snapshot of the root at `copy`; the log names
 * the tmpdir vzdump would use: /var/tmp/vzdumptmp<pid>_<vmid> for a PBS target, else (a dump directory
 * on a POSIX file system) <dumpdir>/<basename>.tmp. Returns the directory the archive is made from.
 */
async function suspendModeCopy(
  sim: PveSimulator,
  o: {
    g: Guest;
    vmid: number;
    storage: Storage;
    basename: string;
    ctx: TaskContext;
    log: (level: "INFO", msg: string) => Promise<void>;
    run: VzdumpRun;
    copy: string;
  },
): Promise<string> {
  const { g, vmid, log, run, copy } = o;
  const pid = decodeUpid(o.ctx.upid)?.pid ?? 0;
  const tmpdir =
    o.storage.type === "pbs"
      ? `/var/tmp/vzdumptmp${pid}_${vmid}`
      : join(o.storage.path, "dump", `${o.basename}.tmp`);
  // rsync_vm: "starting $text sync $from to $to", $from the first disk's dir (/proc/<pid>/root/ for rootfs)
  const sync = async (text: "first" | "final") => {
    await log("INFO", `starting ${text} sync /proc/${10000 + vmid}/root/ to ${tmpdir}`);
    const startedMs = Date.now();
    const t0 = Math.floor(startedMs / 1000);
    await sim.volumes.remove(copy).catch(() => {});
    await sim.volumes.snapshot(g.rootDir, copy, false);
    const bytes = Number((await sh("du", ["-sb", copy])).split("\t")[0]);
    const rate = sim.opts.syncBytesPerSecond;
    if (text === "first" && rate > 0)
      await sleep(Math.max(0, (bytes / rate) * 1000 - (Date.now() - startedMs)));
    // rsync --stats -h: "Total transferred file size: <n> bytes", rsync_vm keeps <n>
    await log(
      "INFO",
      `${text} sync finished - transferred ${rsyncHuman(bytes)} bytes in ${Math.floor(Date.now() / 1000) - t0}s`,
    );
  };
  await sync("first");
  await log("INFO", "suspending guest");
  const frozenAt = Date.now();
  run.guestStoppedAt = frozenAt;
  const freeze = guestFreeze(sim, vmid, run, o.ctx.upid);
  try {
    await freeze.freeze(); // VZDump.pm exec_backup_task: `suspend_vm` (LXC.pm: PVE::LXC::freeze) after the line
    await sync("final");
    await log("INFO", "resuming guest");
  } catch (err) {
    // A failed (or stopped) final sync: exec_backup_task's clean-up keeps the CT frozen through unlock_vm and
    // the plugin's cleanup, then `$cleanup->{resume}` logs `resume vm` and resume_vm thaws it.
    await log("INFO", "resume vm").catch(() => {});
    throw err;
  } finally {
    await freeze.thaw(); // `resume_vm` after `resuming guest`, or after the clean-up's `resume vm`
  }
  run.guestStartedAt = Date.now();
  await log("INFO", `guest is online again after ${onlineAgainAfter(frozenAt)} seconds`);
  return copy;
}

/** rsync's `-h` (human-readable level 2): units of 1000 with two decimals, K/M/G/T/P; plain below 1000. */
export function rsyncHuman(n: number): string {
  const units = ["K", "M", "G", "T", "P"];
  let v = n;
  let unit = "";
  for (const u of units) {
    if (v < 1000) break;
    v /= 1000;
    unit = u;
  }
  return unit ? `${v.toFixed(2)}${unit}` : String(n);
}

/** `$log_vm_online_again`: time() - vmstoptime in whole epoch seconds, "<1" within the same second. */
function onlineAgainAfter(stoppedAt: number): string {
  const seconds = Math.floor(Date.now() / 1000) - Math.floor(stoppedAt / 1000);
  return seconds < 1 ? "<1" : String(seconds);
}

function archiveSuffixOf(job: VzdumpJob): string {
  return job.compression === "lzo" ? ".tar.lzo" : archiveSuffix(job.compression);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The `prune-backups` in effect: the parameter, else the storage's, else the schema default keep-all=1. */
function retentionOf(job: VzdumpJob, storage: Storage): KeepOptions {
  if (job.pruneBackups) return job.pruneBackups;
  const keep = storage.pruneBackups === undefined ? undefined : parseKeep(storage.pruneBackups);
  return keep === undefined || typeof keep === "string" ? { "keep-all": 1 } : keep;
}

/**
 * PBSPlugin.pm `prune_backups`: one `proxmox-backup-client prune` per group (`ct/<vmid>`), which PBS carries
 * out itself; PVE logs the group, not each removed snapshot.
 */
export async function prunePbsGroups(
  storage: Storage,
  marked: readonly PruneEntry[],
  log: (line: string) => Promise<void>,
  groups = [...new Set(marked.map((e) => `${e.type === "qemu" ? "vm" : "ct"}/${e.vmid}`))],
): Promise<number> {
  let removed = 0;
  for (const group of groups) {
    await log(`running 'proxmox-backup-client prune' for '${group}'`);
    for (const e of marked) {
      if (e.mark !== "remove" || `${e.type === "qemu" ? "vm" : "ct"}/${e.vmid}` !== group) continue;
      await removeArchive(storage, e.volid);
      removed++;
    }
  }
  return removed;
}

/** PVE::Storage::archive_remove: the archive and its side files; on PBS, `snapshot forget`. */
export async function removeArchive(storage: Storage, volid: string): Promise<void> {
  const file = volid.slice(`${storage.id}:backup/`.length);
  if (storage.type === "pbs") return removePbsSnapshot(storage, file);
  const path = join(storage.path, "dump", file);
  await rm(path, { force: true });
  await rm(`${path}.notes`, { force: true });
  await rm(`${path}.protected`, { force: true });
  await rm(join(storage.path, "dump", `${file.replace(/\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?)$/, "")}.log`), {
    force: true,
  });
}
