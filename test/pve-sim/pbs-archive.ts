import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeArchive } from "./archive.ts";
import { type Guest, renderConfig, type Storage } from "./cluster-model.ts";
import { finishPbsSnapshot, listPbsBackups, pbsSnapshotName, startPbsSnapshot } from "./pbs-store.ts";
import type { PveSimulator, VzdumpRun } from "./simulator.ts";
import type { TaskContext } from "./task-registry.ts";

/**
 * vzdump's archive step on a PBS storage, with the log lines in their real order and wording:
 * VZDump.pm `exec_backup_task` ("creating Proxmox Backup Server archive '<ct/N/time>'", no `archive file
 * size` line), pve-container VZDump/LXC.pm `archive` (the `proxmox-backup-client backup` command line,
 * logged by PBSPlugin.pm `do_raw_client_cmd` as "run: ..."), and the client's own output
 * (proxmox-backup-client/src/main.rs `create_backup`, pbs-client/src/backup_writer.rs `upload_stream`),
 * which vzdump logs as INFO lines. Byte counts are printed as the client's HumanByte does (binary units).
 * Nothing is deduplicated here: the client never reports reuse ("backup was done incrementally").
 */
export async function archiveToPbs(
  sim: PveSimulator,
  o: {
    g: Guest;
    storage: Storage;
    vmid: number;
    backupTime: number;
    mode: "snapshot" | "stop" | "suspend";
    /** The directory the root is read from (a snapshot, or suspend mode's rsync copy). */
    source: string;
    /** Mount points left out (LXC.pm `prepare`): not mounted under the snapshot dir, so empty there. */
    excludeDirs: string[];
    /** `mp` of every included mount point, for `--include-dev`. */
    includedMps: string[];
    ctx: TaskContext;
    log: (level: "INFO", msg: string) => Promise<void>;
    run: VzdumpRun;
    /** `faults.failTask`: the upload fails with this message; PBS keeps no snapshot. */
    failure?: string;
  },
): Promise<void> {
  const { storage, vmid, ctx, log } = o;
  const pbs = storage.pbs!;
  const name = pbsSnapshotName(vmid, o.backupTime);
  await log("INFO", `creating Proxmox Backup Server archive '${name}'`);
  // VZDump.pm: the tmpdir of a PBS backup is /var/tmp/vzdumptmp<pid>_<vmid>; LXC.pm `prepare`: in suspend
  // mode the rsync copy lives there, otherwise the snapshot is mounted at /mnt/vzsnap0
  const tmpdir = `/var/tmp/vzdumptmp${ctx.task.pid}_${vmid}`;
  const snapdir = o.mode === "suspend" ? tmpdir : "/mnt/vzsnap0";
  const sources = o.mode === "suspend" ? ["."] : o.includedMps.map((mp) => `.${mp}`);
  const unprivileged = String(o.g.config.unprivileged ?? "0") === "1";
  const repo = `${pbs.username}@${pbs.server}:${pbs.datastore}`;
  const command = [
    ...(unprivileged ? ["lxc-usernsexec", "-m", "u:0:100000:65536", "-m", "g:0:100000:65536", "--"] : []),
    "/usr/bin/proxmox-backup-client",
    "backup",
    "--crypt-mode=none",
    `pct.conf:${tmpdir}/etc/vzdump/pct.conf`,
    `root.pxar:${snapdir}`,
    ...sources.flatMap((s) => ["--include-dev", `${snapdir}/${s}`]),
    ...(unprivileged ? ["--skip-lost-and-found"] : []),
    "--exclude=/tmp/?*",
    "--exclude=/var/tmp/?*",
    "--exclude=/var/run/?*.pid",
    "--backup-type",
    "ct",
    "--backup-id",
    String(vmid),
    "--backup-time",
    String(o.backupTime),
    "--repository",
    repo,
  ];
  await log("INFO", `run: ${command.join(" ")}`);
  const started = Date.now();
  const display = `${pbs.username}@${pbs.server}:8007:${pbs.datastore}`; // BackupRepository's Display
  await log("INFO", `Starting backup: ${name}`);
  await log("INFO", `Client name: ${o.g.node}`);
  await log("INFO", `Starting backup protocol: ${ctime(new Date())}`);
  const previous = (await listPbsBackups(storage))
    .filter((b) => b.vmid === vmid && b.subtype === "lxc")
    .sort((a, b) => b.ctime - a.ctime)[0];
  await log(
    "INFO",
    previous
      ? `Downloading previous manifest (${ctime(new Date(previous.ctime * 1000))})`
      : "No previous manifest available.",
  );
  const configDir = join(sim.dataDir, "tmp", `vzdumptmp${ctx.task.pid}_${vmid}`);
  const config = renderConfig(o.g.config);
  await mkdir(join(configDir, "etc", "vzdump"), { recursive: true });
  await writeFile(join(configDir, "etc", "vzdump", "pct.conf"), config);
  await writeFile(join(configDir, "etc", "vzdump", "pct.fw"), "");
  const { root } = await startPbsSnapshot(storage, name);
  let written = false;
  try {
    await log("INFO", `Upload config file '${tmpdir}/etc/vzdump/pct.conf' to '${display}' as pct.conf.blob`);
    await log("INFO", `Upload directory '${snapdir}' to '${display}' as root.pxar.didx`);
    o.run.archiveStartedAt = Date.now();
    // the stand-in for root.pxar: a zstd tar of the same tree, so that `restoreGuest` can restore it
    const result = await writeArchive({
      configDir,
      sourceDir: o.source,
      excludeDirs: o.excludeDirs,
      target: root,
      compression: "zstd",
      zstdThreads: 1,
      bytesPerSecond: sim.opts.archiveBytesPerSecond,
      signal: ctx.signal,
    });
    if (ctx.signal.aborted) throw new Error("interrupted by signal");
    if (o.failure !== undefined) throw new Error(o.failure);
    const seconds = (Date.now() - o.run.archiveStartedAt) / 1000;
    const size = result.bytesWritten;
    const compressed = (await stat(root)).size;
    await log(
      "INFO",
      `root.pxar: had to backup ${humanByte(size)} of ${humanByte(size)} (compressed ${humanByte(compressed)}) in ${seconds.toFixed(2)}s`,
    );
    await log("INFO", `root.pxar: average backup speed: ${humanByte(size / Math.max(seconds, 0.001))}/s`);
    const catalog = Math.max(512, Math.round(size / 1000));
    await log("INFO", `Uploaded backup catalog (${humanByte(catalog)})`);
    await finishPbsSnapshot(storage, name, [
      { filename: "pct.conf.blob", size: Buffer.byteLength(config) },
      { filename: "root.pxar.didx", size },
      { filename: "catalog.pcat1.didx", size: catalog },
    ]);
    written = true;
    await log("INFO", `Duration: ${((Date.now() - started) / 1000).toFixed(2)}s`);
    await log("INFO", `End Time: ${ctime(new Date())}`);
    o.run.archiveFinishedAt = Date.now();
    o.run.archivePath = root;
    o.run.bytesWritten = size;
    o.run.volid = `${storage.id}:backup/${name}`;
  } finally {
    await rm(configDir, { recursive: true, force: true });
    // PBS drops a snapshot whose backup session did not finish
    if (!written) await rm(join(storage.path, name), { recursive: true, force: true });
  }
}

/** strftime("%c") in the C locale: `Fri Dec  4 03:30:14 2026`, local time. */
export function ctime(d: Date): string {
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getDay()];
  const month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
    d.getMonth()
  ];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${day} ${month} ${String(d.getDate()).padStart(2)} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()}`;
}

/** proxmox-human-byte's binary form: `0 B`, `512 B`, `1.5 KiB`, `1.184 GiB` (at most 3 decimals). */
export function humanByte(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(v) : Number(v.toFixed(3))} ${units[i]}`;
}
