import { mkdir, open, readFile, rename } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { z } from "zod";
import { AgentError } from "../lib/errors.ts";

/**
 * Replaces `path` with `data` so that after a crash or power loss the file holds either the old or the
 * new content, never a torn mix: write a temporary sibling, fsync it, rename it over, fsync the directory.
 * The journal, the stack registry and every other state file go through here.
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, "w", mode);
  try {
    await fh.chmod(mode); // exactly `mode`: open() applies the umask (0077 under the systemd unit)
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Writes a value as JSON through writeFileDurable. */
export function writeJsonDurable(path: string, value: unknown, mode = 0o600): Promise<void> {
  return writeFileDurable(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/**
 * Reads and validates a JSON state file. A missing file is `undefined` (first start); a file that exists
 * but does not parse or validate is an error naming the file, because silently starting from scratch
 * could forget a quiesced stack.
 */
export async function readJsonFile<S extends z.ZodType>(
  path: string,
  schema: S,
): Promise<z.infer<S> | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new AgentError("state_file_corrupt", `state file ${path} is not valid JSON`, {
      hint: "inspect it; move it aside only if you know what it recorded",
      cause,
    });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new AgentError(
      "state_file_invalid",
      `state file ${path} does not match its schema: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
      { hint: "inspect it; move it aside only if you know what it recorded" },
    );
  }
  return parsed.data;
}
