import type { Logger } from "../log/logger.ts";
import type { PveClient, VzdumpSubmission } from "./client.ts";
import { PveNetworkError, PveServerError, PveTaskStartUnknownError } from "./errors.ts";
import { sleep } from "./retry.ts";
import type { TaskListItem } from "./schemas.ts";
import { splitTokenUser } from "./upid.ts";
import type { VzdumpRequest } from "./vzdump-params.ts";

/**
 * The ambiguous-POST rule. A task-starting POST that failed after it may have reached PVE (a timeout, a
 * dropped connection, a proxy 502/503/504) is never sent again blindly: that could start a second backup
 * or snapshot. Instead the node's task list is searched for a task of the same type and guest, started
 * by this very token, that was not listed right before the POST, and that task is adopted.
 */
export interface RecoveryOptions {
  logger: Logger;
  now?: () => number;
  /** How far the node's clock may lag the guest's when comparing start times. */
  clockSkewSeconds?: number;
  /** Task-list lookups before giving up (the POST may still be forking the worker). */
  lookups?: number;
  lookupWait?: (attempt: number) => Promise<void>;
  /** UPIDs already known to the caller (earlier runs), never adopted. */
  exclude?: ReadonlySet<string>;
}

export type Submitted<T> = T & { recovered: boolean };

function isAmbiguous(err: unknown): boolean {
  if (err instanceof PveNetworkError) return err.mayHaveReachedServer;
  return err instanceof PveServerError && [502, 503, 504].includes(err.status);
}

function owner(item: TaskListItem): string {
  return item.tokenid === undefined ? item.user : `${item.user}!${item.tokenid}`;
}

/** Tasks of `match` started by this very token since `since` (unix seconds, node clock). */
export async function listOurTasks(
  client: PveClient,
  node: string,
  match: { type: string; vmid: number },
  since: number,
): Promise<TaskListItem[]> {
  const tasks = await client.taskList(node, {
    vmid: match.vmid,
    typefilter: match.type,
    // The user part only: PVE matches it as a substring, and whether it compares the token id or the
    // split user is not pinned down in pve-api-facts.md; the exact owner is checked below.
    userfilter: splitTokenUser(client.tokenId).user,
    since,
    source: "all",
    limit: 50,
  });
  return tasks.filter(
    (t) =>
      t.type === match.type &&
      t.id === String(match.vmid) &&
      owner(t) === client.tokenId &&
      t.starttime >= since,
  );
}

async function findNewTask(
  client: PveClient,
  node: string,
  match: { type: string; vmid: number },
  since: number,
  known: ReadonlySet<string>,
  options: RecoveryOptions,
): Promise<string | undefined> {
  const lookups = options.lookups ?? 4;
  const wait = options.lookupWait ?? ((attempt: number) => sleep(1000 * attempt));
  for (let attempt = 1; attempt <= lookups; attempt++) {
    try {
      const fresh = (await listOurTasks(client, node, match, since))
        .filter((t) => !known.has(t.upid))
        .sort((a, b) => b.starttime - a.starttime);
      if (fresh.length > 1) {
        options.logger.warn(
          { upids: fresh.map((t) => t.upid) },
          "several new tasks after an ambiguous POST; adopting the newest",
        );
      }
      if (fresh[0]) return fresh[0].upid;
    } catch (err) {
      options.logger.warn(
        { err: (err as Error).message, attempt },
        "task list lookup after an ambiguous POST failed",
      );
    }
    if (attempt < lookups) await wait(attempt);
  }
  return undefined;
}

/**
 * Lists our matching tasks right before the POST, so that after an ambiguous failure only a task that
 * was not there before can be adopted. The time window alone cannot tell: the node's clock may differ
 * from the guest's, and an earlier task of ours may have started within the allowed skew.
 */
async function submitWithRecovery<T>(
  client: PveClient,
  node: string,
  match: { type: string; vmid: number },
  what: string,
  post: () => Promise<T>,
  adopt: (upid: string) => T,
  options: RecoveryOptions,
): Promise<Submitted<T>> {
  const since = Math.floor((options.now ?? Date.now)() / 1000) - (options.clockSkewSeconds ?? 60);
  const known = new Set(options.exclude);
  try {
    for (const t of await listOurTasks(client, node, match, since)) known.add(t.upid);
  } catch (err) {
    // Not worth failing the backup over: recovery falls back to the time window and `exclude`.
    options.logger.warn({ err: (err as Error).message }, "could not list existing tasks before the POST");
  }
  try {
    return { ...(await post()), recovered: false };
  } catch (err) {
    if (!isAmbiguous(err)) throw err;
    options.logger.warn(
      { err: (err as Error).message, node, ...match },
      `${what} may have reached PVE; looking for the task instead of re-sending`,
    );
    const upid = await findNewTask(client, node, match, since, known, options);
    if (upid === undefined) throw new PveTaskStartUnknownError(what, err);
    options.logger.info({ upid }, `adopted the ${what} task found in the node's task list`);
    return { ...adopt(upid), recovered: true };
  }
}

/** POST vzdump, or adopt the task it started when the POST failed ambiguously. */
export async function submitVzdump(
  client: PveClient,
  node: string,
  request: VzdumpRequest,
  options: RecoveryOptions & { headersTimeoutMs?: number },
): Promise<Submitted<VzdumpSubmission>> {
  return submitWithRecovery<VzdumpSubmission>(
    client,
    node,
    { type: "vzdump", vmid: request.vmid },
    `vzdump of ${request.vmid}`,
    () => client.vzdump(node, request, { headersTimeoutMs: options.headersTimeoutMs }),
    (upid) => ({ kind: "task", upid }),
    options,
  );
}

/** POST a snapshot, or adopt the `vzsnapshot` task it started when the POST failed ambiguously. */
export async function submitSnapshot(
  client: PveClient,
  node: string,
  vmid: number,
  name: string,
  options: RecoveryOptions & { description?: string; headersTimeoutMs?: number },
): Promise<Submitted<{ upid: string }>> {
  return submitWithRecovery(
    client,
    node,
    { type: "vzsnapshot", vmid },
    `snapshot ${name} of ${vmid}`,
    async () => ({
      upid: await client.createSnapshot(node, vmid, name, {
        description: options.description,
        headersTimeoutMs: options.headersTimeoutMs,
      }),
    }),
    (upid) => ({ upid }),
    options,
  );
}
