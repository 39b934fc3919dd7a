import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TarEntry {
  mode: string;
  owner: string;
  path: string;
}

/** `tar --numeric-owner -tv` of a .tar.zst: mode string, uid/gid and path of every entry. */
export async function listTarZst(path: string): Promise<TarEntry[]> {
  const { stdout } = await run(
    "bash",
    ["-c", 'zstd -q -d -c -- "$1" | tar --numeric-owner -tvf -', "_", path],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const parts = line.split(/\s+/);
      return { mode: parts[0] as string, owner: parts[1] as string, path: parts.slice(5).join(" ") };
    });
}

/** The content of one member of a .tar.zst. */
export async function readTarZstMember(path: string, member: string): Promise<string> {
  const { stdout } = await run("tar", ["--zstd", "-xOf", path, member]);
  return stdout;
}
