/**
 * The Debian package as `packaging/build-deb.sh` builds it: installed size (what apt shows; the goal is
 * at most 8 MiB), the .deb's own size, and the number of files installed. No baseline: sizes, not speeds.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { BenchReport } from "./report.ts";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;

export default async function (report: BenchReport): Promise<void> {
  const out = await mkdtemp(join(tmpdir(), "felhom-package-bench-"));
  try {
    const deb = (await run("bash", ["packaging/build-deb.sh", out], { cwd: root })).stdout.trim();
    const kib = Number((await run("dpkg-deb", ["-f", deb, "Installed-Size"])).stdout.trim());
    const listing = (await run("dpkg-deb", ["-c", deb], { maxBuffer: 64 * 1024 ** 2 })).stdout;
    report({ metric: "installed_size", value: kib / 1024, unit: "MiB" });
    report({ metric: "deb_size", value: (await stat(deb)).size / 1024 ** 2, unit: "MiB" });
    report({
      metric: "installed_files",
      value: listing.split("\n").filter((l) => l.startsWith("-")).length,
      unit: "files",
    });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
