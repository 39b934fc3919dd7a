import { readFile, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { extractArchive } from "./archive.ts";

/**
 * `pct restore`'s file-system half: extract the archive into a fresh root (numeric owners, modes), then take the
 * guest config from the archive's /etc/vzdump/pct.conf and remove it and pct.fw from the root. Returns the raw
 * config keys of the current state (snapshot sections, `lock` and `parent` are not restored).
 */
export async function restoreArchiveInto(
  archive: string,
  rootDir: string,
): Promise<Record<string, string | number>> {
  await extractArchive(archive, rootDir);
  const dir = join(rootDir, "etc", "vzdump");
  const conf: Record<string, string | number> = {};
  for (const line of (await readFile(join(dir, "pct.conf"), "utf8")).split("\n")) {
    if (line.startsWith("[")) break;
    const m = /^(\w+):\s?(.*)$/.exec(line);
    if (m && m[1] !== "lock" && m[1] !== "parent") conf[m[1] as string] = m[2] as string;
  }
  await rm(join(dir, "pct.conf"), { force: true });
  await rm(join(dir, "pct.fw"), { force: true });
  await rmdir(dir).catch(() => {}); // only when nothing else lives there
  return conf;
}
