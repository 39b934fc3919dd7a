import { execFileSync } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { sh } from "./exec.ts";

export type SnapshotMethod = "btrfs" | "copy";

/**
 * Guest root directories and their snapshots. The real thing is a btrfs file system on a loop device: roots are
 * subvolumes, snapshots are `btrfs subvolume snapshot [-r]`, constant time in data size like a PVE storage
 * snapshot. When btrfs cannot be mounted (no root, no loop devices) it falls back to `cp -a`, says so loudly and
 * reports `method === "copy"` so that tests measuring downtime can refuse to run on it.
 */
export class VolumeStore {
  private constructor(
    readonly method: SnapshotMethod,
    readonly base: string,
    private readonly loopDevice: string | undefined,
    readonly fallbackReason: string | undefined,
  ) {}

  static async create(dir: string, opts: { sizeBytes: number; forceCopy?: boolean }): Promise<VolumeStore> {
    const base = join(dir, "guests");
    await mkdir(base, { recursive: true });
    if (opts.forceCopy) return await VolumeStore.fallback(base, "forced by the forceCopySnapshots option");
    const image = join(dir, "guests.btrfs.img");
    let loop: string | undefined;
    try {
      await sh("truncate", ["-s", String(opts.sizeBytes), image]);
      await sh("mkfs.btrfs", ["-q", "-f", image]);
      loop = (await sh("losetup", ["--find", "--show", image])).trim();
      await sh("mount", ["-t", "btrfs", loop, base]);
      await mkdir(join(base, ".snapshots"));
      return new VolumeStore("btrfs", base, loop, undefined);
    } catch (err) {
      if (loop) await sh("losetup", ["-d", loop]).catch(() => {});
      await rm(image, { force: true });
      return await VolumeStore.fallback(base, (err as Error).message);
    }
  }

  private static async fallback(base: string, reason: string): Promise<VolumeStore> {
    await mkdir(join(base, ".snapshots"), { recursive: true });
    console.warn(
      `[pve-sim] WARNING: btrfs unavailable (${reason}); guest snapshots are PLAIN COPIES, ` +
        "their duration grows with the data size. Downtime measurements are meaningless in this mode.",
    );
    return new VolumeStore("copy", base, undefined, reason);
  }

  rootPath(name: string): string {
    return join(this.base, name);
  }

  snapshotPath(name: string): string {
    return join(this.base, ".snapshots", name);
  }

  async createRoot(name: string): Promise<string> {
    const path = this.rootPath(name);
    if (this.method === "btrfs") await sh("btrfs", ["subvolume", "create", path]);
    else await mkdir(path);
    return path;
  }

  /** A snapshot of `source` at `target`; read-only on btrfs when asked. */
  async snapshot(source: string, target: string, readOnly: boolean): Promise<void> {
    if (this.method === "btrfs")
      await sh("btrfs", ["subvolume", "snapshot", ...(readOnly ? ["-r"] : []), source, target]);
    else await sh("cp", ["-a", "--reflink=auto", source, target]);
  }

  async remove(path: string): Promise<void> {
    if (this.method === "btrfs")
      await sh("btrfs", ["subvolume", "delete", path]).catch(() =>
        rm(path, { recursive: true, force: true }),
      );
    else await rm(path, { recursive: true, force: true });
  }

  /** Last-resort clean-up from a process `exit` handler, where nothing async runs any more. */
  closeSync(): void {
    if (this.method !== "btrfs") return;
    const quiet = (cmd: string, args: string[]) => {
      try {
        execFileSync(cmd, args, { stdio: "ignore" });
      } catch {
        /* best effort: the process is exiting */
      }
    };
    quiet("umount", ["-l", this.base]);
    if (this.loopDevice) quiet("losetup", ["-d", this.loopDevice]);
  }

  async close(): Promise<void> {
    if (this.method !== "btrfs") return;
    await sh("umount", [this.base]).catch(() => sh("umount", ["-l", this.base]));
    if (this.loopDevice) await sh("losetup", ["-d", this.loopDevice]).catch(() => {});
  }
}
