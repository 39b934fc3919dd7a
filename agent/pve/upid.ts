import { AgentError } from "../lib/errors.ts";

/**
 * A decoded PVE task id. `user` and `tokenId` are split the way the task API splits them
 * (`agent@pve` + `backup` for a task started by the token `agent@pve!backup`).
 */
export interface Upid {
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
  tokenId?: string;
}

// pve-common:src/PVE/UPID.pm decode pattern; pstart grows to 9 hex digits after ~497 days of uptime.
const UPID_RE =
  /^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

// pve-access-control split_tokenid: realm and token sub-id are `[A-Za-z][A-Za-z0-9.\-_]+`.
const TOKEN_USER_RE = /^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$/;

/** Splits `user@realm!tokenid` into its user and token parts; a plain user id has no token part. */
export function splitTokenUser(user: string): { user: string; tokenId?: string } {
  const m = TOKEN_USER_RE.exec(user);
  return m ? { user: m[1]!, tokenId: m[2]! } : { user };
}

/** `user@realm!tokenid` (or the plain user) — the form PVE writes into the UPID and compares tasks by. */
export function taskOwner(task: { user: string; tokenId?: string | undefined }): string {
  return task.tokenId === undefined ? task.user : `${task.user}!${task.tokenId}`;
}

export function isUpid(text: string): boolean {
  return UPID_RE.test(text);
}

export function parseUpid(text: string): Upid {
  const m = UPID_RE.exec(text);
  if (!m) {
    throw new AgentError(
      "pve_upid_invalid",
      `not a PVE task id (UPID): ${JSON.stringify(text.slice(0, 200))}`,
      {
        hint: "this is a bug in the agent or an unsupported PVE version",
      },
    );
  }
  const split = splitTokenUser(m[7]!);
  const upid: Upid = {
    node: m[1]!,
    pid: Number.parseInt(m[2]!, 16),
    pstart: Number.parseInt(m[3]!, 16),
    starttime: Number.parseInt(m[4]!, 16),
    type: m[5]!,
    id: m[6]!,
    user: split.user,
  };
  if (split.tokenId !== undefined) upid.tokenId = split.tokenId;
  return upid;
}

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");

/** The inverse of `parseUpid`, formatting like PVE (`%08X`, upper case, trailing colon). */
export function formatUpid(upid: Upid): string {
  return `UPID:${upid.node}:${hex8(upid.pid)}:${hex8(upid.pstart)}:${hex8(upid.starttime)}:${upid.type}:${upid.id}:${taskOwner(upid)}:`;
}
