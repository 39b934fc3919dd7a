import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { AgentError } from "./errors.ts";

/**
 * Who may control the files that control the token. Whoever can write `agent.yaml` can point `pve.url`
 * elsewhere with `tls.insecure` and collect the token; whoever can write a secret file can swap the token
 * for theirs; whoever can write the directory holding either can replace it. So each such file, and the
 * directory it is in, must belong to root and be writable by nobody else.
 *
 * "Root" here is uid 0 or the user the agent itself runs as (OpenSSH's rule for its own files): the
 * packaged daemon runs as root, so for it that is root alone; a developer running the CLI as themselves
 * is not locked out of their own files.
 */
export type FileRole =
  /** The config, a CA bundle: others may read it, only root may write it. */
  | "config"
  /** A secret: only root may read or write it. */
  | "secret";

/** What `stat` says about the file and its directory (the pure check's input). */
export interface OwnerFacts {
  uid: number;
  /** st_mode; only the permission and sticky bits are looked at. */
  mode: number;
}

export interface TrustProblem {
  /** What is wrong, naming the path. */
  problem: string;
  /** The exact commands that fix it. */
  fix: string;
}

const STICKY = 0o1000;

function owned(uid: number, trustedUids: readonly number[]): boolean {
  return trustedUids.includes(uid);
}

/**
 * Pure: every problem with the file and its directory, and one command line that fixes them all;
 * undefined when both are root's alone. A directory with the sticky bit (/tmp) may be writable by others:
 * they cannot replace a file that is not theirs.
 */
export function trustProblem(
  role: FileRole,
  path: string,
  file: OwnerFacts,
  dir: OwnerFacts,
  trustedUids: readonly number[],
): TrustProblem | undefined {
  const problems: string[] = [];
  const fixes: string[] = [];
  const perms = file.mode & 0o777;
  const octal = `0${perms.toString(8).padStart(3, "0")}`;
  if (!owned(file.uid, trustedUids)) {
    problems.push(`is owned by uid ${file.uid}, not root`);
    fixes.push(`chown root:root ${path}`);
  }
  if (role === "secret" && (perms & 0o077) !== 0) {
    problems.push(`has mode ${octal}; it must not be readable by group or others (mode 0600)`);
    fixes.push(`chmod 600 ${path}`);
  }
  if (role === "config" && (perms & 0o022) !== 0) {
    problems.push(`has mode ${octal}; it must not be writable by group or others`);
    fixes.push(`chmod go-w ${path}`);
  }
  const parent = dirname(path);
  if (!owned(dir.uid, trustedUids)) {
    problems.push(`is in ${parent}, owned by uid ${dir.uid}, not root`);
    fixes.push(`chown root:root ${parent}`);
  }
  if ((dir.mode & 0o022) !== 0 && (dir.mode & STICKY) === 0) {
    problems.push(`is in ${parent}, which group or others can write (they could replace it)`);
    fixes.push(`chmod go-w ${parent}`);
  }
  if (problems.length === 0) return undefined;
  return { problem: problems.join("; "), fix: fixes.join(" && ") };
}

/** uid 0 and the agent's own user. */
export function trustedUids(): number[] {
  const self = process.geteuid?.() ?? 0;
  return self === 0 ? [0] : [0, self];
}

/**
 * Throws `code` naming `what`, the problem and the exact fix when the file is not root's alone; a file that
 * cannot be stat'ed is left to the caller's read, which reports it in its own words.
 */
export async function requireTrusted(
  role: FileRole,
  path: string,
  what: string,
  code: string,
): Promise<void> {
  const trust = await checkFileTrust(role, path).catch(() => undefined);
  if (trust)
    throw new AgentError(code, `the ${what} ${path} ${trust.problem}`, { hint: `run: ${trust.fix}` });
}

/**
 * The check against the file system; a stat failure is left to the caller's read, which reports it in
 * its own words. Follows symlinks (the target is what is read); a link in a directory root alone can
 * write is root's choice.
 */
export async function checkFileTrust(role: FileRole, path: string): Promise<TrustProblem | undefined> {
  const [file, dir] = await Promise.all([stat(path), stat(dirname(path))]);
  return trustProblem(role, path, file, dir, trustedUids());
}
