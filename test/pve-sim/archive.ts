import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Slows a stream to `bytesPerSecond`, so that archive time grows with data size as on a real host. */
class Throttle extends Transform {
  private bytes = 0;
  private readonly started = Date.now();
  constructor(private readonly bytesPerSecond: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const due = this.started + (this.bytes / this.bytesPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 1) setTimeout(() => cb(null, chunk), wait);
    else cb(null, chunk);
  }
}

export type Compression = "none" | "gzip" | "zstd";

export function archiveSuffix(c: Compression): string {
  return c === "none" ? ".tar" : c === "gzip" ? ".tar.gz" : ".tar.zst";
}

export interface ArchiveResult {
  /** tar's own `Total bytes written: ...` line. */
  totalsLine: string;
  bytesWritten: number;
}

function waitExit(
  child: ReturnType<typeof spawn>,
  what: string,
  stderr: () => string,
  okCodes = [0],
): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, sig) => {
      if (code !== null && okCodes.includes(code)) resolve();
      else
        reject(
          new Error(
            `command '${what}' failed: ${sig ? `got signal ${sig}` : `exit code ${code}`} ${stderr().trim()}`.trim(),
          ),
        );
    });
  });
}

/**
 * vzdump's LXC archive step (pve-container VZDump/LXC.pm `archive`): the config as ./etc/vzdump/pct.conf, then
 * the root (snapshot or live dir) with the standard excludes, numeric owners, modes, ACLs and xattrs, through
 * the compressor into `target` (the `.dat` temp file).
 */
export async function writeArchive(o: {
  configDir: string;
  sourceDir: string;
  /** Paths inside the guest whose content stays out (excluded mount points; their directory stays). */
  excludeDirs?: readonly string[];
  target: string;
  compression: Compression;
  zstdThreads: number;
  bytesPerSecond: number;
  signal: AbortSignal;
}): Promise<ArchiveResult> {
  const tarArgs = [
    "cpf",
    "-",
    "--totals",
    "--one-file-system",
    "-p",
    "--sparse",
    "--numeric-owner",
    "--acls",
    "--xattrs",
    "--xattrs-include=user.*",
    "--xattrs-include=security.capability",
    "--warning=no-file-ignored",
    "--warning=no-xattr-write",
    `--directory=${o.configDir}`,
    "./etc/vzdump/pct.conf",
    "./etc/vzdump/pct.fw",
    `--directory=${o.sourceDir}`,
    "--no-anchored",
    "--exclude=lost+found",
    "--anchored",
    "--exclude=./tmp/?*",
    "--exclude=./var/tmp/?*",
    "--exclude=./var/run/?*.pid",
    ...(o.excludeDirs ?? []).map((d) => `--exclude=.${d.replace(/\/$/, "")}/?*`),
    "./",
  ];
  const tar = spawn("tar", tarArgs, { stdio: ["ignore", "pipe", "pipe"] });
  let tarErr = "";
  tar.stderr.on("data", (d: Buffer) => {
    tarErr += d.toString();
  });
  const out = createWriteStream(o.target);
  const onAbort = () => tar.kill("SIGTERM");
  o.signal.addEventListener("abort", onAbort, { once: true });
  let bytesWritten = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytesWritten += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    const tarDone = waitExit(tar, "tar", () => tarErr);
    if (o.compression === "none") {
      await Promise.all([pipeline(tar.stdout, counter, new Throttle(o.bytesPerSecond), out), tarDone]);
    } else {
      const comp =
        o.compression === "zstd"
          ? spawn("zstd", ["-q", "--rsyncable", `--threads=${o.zstdThreads}`, "-c"], {
              stdio: ["pipe", "pipe", "pipe"],
            })
          : spawn("gzip", ["--rsyncable", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
      let compErr = "";
      comp.stderr?.on("data", (d: Buffer) => {
        compErr += d.toString();
      });
      const compDone = waitExit(comp, o.compression, () => compErr);
      await Promise.all([
        pipeline(tar.stdout, counter, new Throttle(o.bytesPerSecond), comp.stdin as NodeJS.WritableStream),
        pipeline(comp.stdout as NodeJS.ReadableStream, out),
        tarDone,
        compDone,
      ]);
    }
  } finally {
    o.signal.removeEventListener("abort", onAbort);
  }
  const totalsLine =
    tarErr.split("\n").find((l) => l.startsWith("Total bytes written")) ??
    `Total bytes written: ${bytesWritten}`;
  return { totalsLine, bytesWritten };
}

/**
 * `pct restore`'s extraction: numeric owners, modes, ACLs, xattrs. tar runs the decompressor itself: piping
 * zstd into tar breaks when tar stops reading at the end-of-archive blocks before zstd has written its padding.
 */
export async function extractArchive(archive: string, targetDir: string): Promise<void> {
  const decomp = archive.endsWith(".zst")
    ? ["--zstd"]
    : archive.endsWith(".gz") || archive.endsWith(".tgz")
      ? ["-z"]
      : [];
  const tar = spawn(
    "tar",
    [
      ...decomp,
      "-xpf",
      archive,
      "--numeric-owner",
      "--acls",
      "--xattrs",
      "--xattrs-include=*",
      "-C",
      targetDir,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let tarErr = "";
  tar.stderr?.on("data", (d: Buffer) => {
    tarErr += d.toString();
  });
  await waitExit(tar, "tar", () => tarErr);
}

/** One member of an archive as text (PVE::Storage::extract_vzdump_config for LXC). */
export async function readArchiveMember(archive: string, member: string): Promise<string> {
  const decomp = archive.endsWith(".zst")
    ? ["--zstd"]
    : archive.endsWith(".gz") || archive.endsWith(".tgz")
      ? ["-z"]
      : [];
  const tar = spawn("tar", [...decomp, "-xOf", archive, member], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  tar.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  tar.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  await waitExit(tar, "tar", () => err);
  return out;
}
