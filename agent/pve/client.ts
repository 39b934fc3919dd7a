import type { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { PveResponseError } from "./errors.ts";
import {
  type LxcNet,
  type PrunePolicy,
  parseLxcNet,
  prunePolicyToPropertyString,
} from "./property-string.ts";
import {
  backupVolumeSchema,
  certificateSchema,
  clusterVmSchema,
  featureSchema,
  lxcConfigSchema,
  lxcStatusSchema,
  permissionsSchema,
  pruneItemSchema,
  snapshotSchema,
  storageStatusSchema,
  taskListItemSchema,
  taskLogSchema,
  taskStatusSchema,
  upidSchema,
  versionSchema,
} from "./schemas.ts";
import { type CallOptions, type Method, type PveConnection, PveTransport } from "./transport.ts";
import { buildVzdumpParams, isValidStorageId, isValidVmid, type VzdumpRequest } from "./vzdump-params.ts";

export type VzdumpSubmission = { kind: "task"; upid: string } | { kind: "not-local" };

export interface TaskListFilter {
  vmid?: number;
  typefilter?: string;
  userfilter?: string;
  since?: number;
  until?: number;
  source?: "archive" | "active" | "all";
  statusfilter?: string;
  errors?: boolean;
  start?: number;
  limit?: number;
}

export interface LxcConfig {
  raw: z.infer<typeof lxcConfigSchema>;
  hostname: string | undefined;
  lock: string | undefined;
  /** `net0`, `net1`, … parsed. */
  nets: Record<string, LxcNet>;
}

/** Arguments that do not need the server's judgement. A wrong one changes nothing on the host. */
function badArgument(message: string): never {
  throw new AgentError("pve_argument_invalid", message, {
    hint: "this is a bug in the caller of the PVE client",
  });
}

function vmidArg(vmid: number): string {
  if (!isValidVmid(vmid)) badArgument(`vmid must be an integer 100..999999999, got ${vmid}`);
  return String(vmid);
}

function storageArg(storage: string): string {
  if (!isValidStorageId(storage)) badArgument(`not a PVE storage id: ${JSON.stringify(storage)}`);
  return encodeURIComponent(storage);
}

const seg = encodeURIComponent;

/** pve-snapshot-name (pve-common JSONSchema `$CONFIGID_RE`), minus PVE's reserved names. */
export function snapshotNameProblem(name: string): string | undefined {
  if (!/^[a-z][a-z0-9_-]+$/i.test(name) || name.length > 40) {
    return "must be 2-40 characters of letters, digits, '-' and '_', starting with a letter";
  }
  if (name === "current" || name === "vzdump") return `'${name}' is reserved by PVE`;
  return undefined;
}

function snapshotArg(name: string): string {
  const problem = snapshotNameProblem(name);
  if (problem) {
    throw new AgentError("pve_snapshot_name_invalid", `snapshot name ${JSON.stringify(name)} ${problem}`, {
      hint: "choose another snapshot name",
    });
  }
  return seg(name);
}

/**
 * Typed calls to the PVE REST API for one token. Every answer is validated at this boundary; every
 * failure is a `PveError` (see errors.ts). Node-scoped calls take the node explicitly: the guest may have
 * been migrated, so callers re-discover it (`clusterVms`) instead of trusting configuration.
 */
export class PveClient {
  readonly #transport: PveTransport;
  readonly tokenId: string;

  constructor(connection: PveConnection, logger: Logger) {
    this.#transport = new PveTransport(connection, logger);
    this.tokenId = connection.tokenId;
  }

  async #get<S extends z.ZodType>(
    schema: S,
    path: string,
    query?: CallOptions["query"],
    signal?: AbortSignal,
  ): Promise<z.infer<S>> {
    const env = await this.#transport.call("GET", path, { query, signal });
    return validate(schema, env.data, `GET ${path}`);
  }

  async #task(method: Method, path: string, options: CallOptions): Promise<string> {
    const env = await this.#transport.call(method, path, options);
    return validate(upidSchema, env.data, `${method} ${path}`);
  }

  async version(signal?: AbortSignal) {
    return this.#get(versionSchema, "/version", undefined, signal);
  }

  /** The guests this token may see (VM.Audit): a self-scoped token sees only its own. */
  async clusterVms(signal?: AbortSignal) {
    return this.#get(clusterVmSchema.array(), "/cluster/resources", { type: "vm" }, signal);
  }

  /**
   * The node the guest runs on now, asked afresh on every call (a guest can be migrated between
   * backups); configuration never pins it.
   */
  async nodeOf(vmid: number, signal?: AbortSignal): Promise<string> {
    const vm = (await this.clusterVms(signal)).find((v) => v.vmid === vmid && v.type === "lxc");
    if (!vm) {
      throw new AgentError(
        "pve_guest_not_visible",
        `the token cannot see container ${vmid} in /cluster/resources`,
        {
          hint: `grant VM.Audit on /vms/${vmid} to BOTH the user and the token, or check that the vmid still exists`,
        },
      );
    }
    return vm.node;
  }

  /** Whether the CT's volumes allow `feature` (pve-container API2/LXC.pm `vm_feature`; VM.Audit). */
  async lxcHasFeature(
    node: string,
    vmid: number,
    feature: "snapshot" | "clone" | "copy",
    signal?: AbortSignal,
  ) {
    const answer = await this.#get(
      featureSchema,
      `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/feature`,
      { feature },
      signal,
    );
    return answer.hasFeature;
  }

  async lxcStatus(node: string, vmid: number, signal?: AbortSignal) {
    return this.#get(
      lxcStatusSchema,
      `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/status/current`,
      undefined,
      signal,
    );
  }

  async lxcConfig(
    node: string,
    vmid: number,
    options: { snapshot?: string; current?: boolean } = {},
  ): Promise<LxcConfig> {
    const raw = await this.#get(lxcConfigSchema, `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/config`, {
      snapshot: options.snapshot,
      current: options.current,
    });
    const nets: Record<string, LxcNet> = {};
    for (const [key, value] of Object.entries(raw)) {
      if (/^net\d+$/.test(key) && typeof value === "string") nets[key] = parseLxcNet(value);
    }
    return { raw, hostname: raw.hostname, lock: raw.lock, nets };
  }

  /**
   * POST vzdump with only the parameters the agent may send. PVE answers the literal "OK" and starts
   * nothing when the vmid lives on another node: that is `not-local`, not success. Prefer
   * `submitVzdump`, which also recovers from an ambiguous failure of this POST.
   */
  async vzdump(
    node: string,
    request: VzdumpRequest,
    options: { headersTimeoutMs?: number } = {},
  ): Promise<VzdumpSubmission> {
    const form = buildVzdumpParams(request);
    const path = `/nodes/${seg(node)}/vzdump`;
    const env = await this.#transport.call("POST", path, { form, ...options });
    if (env.data === "OK") return { kind: "not-local" };
    return { kind: "task", upid: validate(upidSchema, env.data, `POST ${path}`) };
  }

  async taskStatus(node: string, upid: string, signal?: AbortSignal) {
    return this.#get(taskStatusSchema, `/nodes/${seg(node)}/tasks/${seg(upid)}/status`, undefined, signal);
  }

  /** Lines `start+1 …` (at most `limit`; 0 reads to the end) and `total`, the file's line count. */
  async taskLog(
    node: string,
    upid: string,
    range: { start: number; limit: number },
    signal?: AbortSignal,
  ): Promise<{ lines: { n: number; t: string }[]; total: number | undefined }> {
    const path = `/nodes/${seg(node)}/tasks/${seg(upid)}/log`;
    const env = await this.#transport.call("GET", path, { query: range, signal });
    return { lines: validate(taskLogSchema, env.data, `GET ${path}`), total: env.total };
  }

  async taskList(node: string, filter: TaskListFilter = {}, signal?: AbortSignal) {
    return this.#get(taskListItemSchema.array(), `/nodes/${seg(node)}/tasks`, { ...filter }, signal);
  }

  /** SIGTERM, then SIGKILL after 5 s: vzdump's clean-up may be cut off (leftover lock or snapshot). */
  async stopTask(node: string, upid: string): Promise<void> {
    await this.#transport.call("DELETE", `/nodes/${seg(node)}/tasks/${seg(upid)}`);
  }

  async storageStatus(node: string, storage: string, signal?: AbortSignal) {
    return this.#get(
      storageStatusSchema,
      `/nodes/${seg(node)}/storage/${storageArg(storage)}/status`,
      undefined,
      signal,
    );
  }

  /** Backup volumes of one guest. PVE silently drops volumes the token may not see. */
  async backups(node: string, storage: string, vmid: number, signal?: AbortSignal) {
    return this.#get(
      backupVolumeSchema.array(),
      `/nodes/${seg(node)}/storage/${storageArg(storage)}/content`,
      { content: "backup", vmid: vmidArg(vmid) },
      signal,
    );
  }

  /** Returns the UPID of the `imgdel` task, or null when `delay` let PVE wait for it to finish OK. */
  async deleteVolume(
    node: string,
    storage: string,
    volid: string,
    options: { delay?: number } = {},
  ): Promise<string | null> {
    const path = `/nodes/${seg(node)}/storage/${storageArg(storage)}/content/${seg(volid)}`;
    const env = await this.#transport.call("DELETE", path, { query: { delay: options.delay } });
    if (env.data === null || env.data === undefined) return null;
    return validate(upidSchema, env.data, `DELETE ${path}`);
  }

  /** Dry run. `vmid` is required here although PVE does not need it: the agent only looks at itself. */
  async pruneDryRun(node: string, storage: string, vmid: number, policy?: PrunePolicy, signal?: AbortSignal) {
    return this.#get(
      pruneItemSchema.array(),
      `/nodes/${seg(node)}/storage/${storageArg(storage)}/prunebackups`,
      { vmid: vmidArg(vmid), type: "lxc", "prune-backups": policy && prunePolicyToPropertyString(policy) },
      signal,
    );
  }

  async snapshots(node: string, vmid: number, signal?: AbortSignal) {
    return this.#get(
      snapshotSchema.array(),
      `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/snapshot`,
      undefined,
      signal,
    );
  }

  /** Starts a `vzsnapshot` task. Prefer `submitSnapshot`, which recovers from an ambiguous failure. */
  async createSnapshot(
    node: string,
    vmid: number,
    name: string,
    options: { description?: string; headersTimeoutMs?: number } = {},
  ): Promise<string> {
    snapshotArg(name);
    const form: Record<string, string> = { snapname: name };
    if (options.description !== undefined) form.description = options.description;
    return this.#task("POST", `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/snapshot`, {
      form,
      headersTimeoutMs: options.headersTimeoutMs,
    });
  }

  async deleteSnapshot(
    node: string,
    vmid: number,
    name: string,
    options: { force?: boolean } = {},
  ): Promise<string> {
    return this.#task("DELETE", `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/snapshot/${snapshotArg(name)}`, {
      query: { force: options.force },
    });
  }

  /**
   * Starts a `vzrollback` task. Rollback KILLS a running CT first (lxc-stop --kill). Only for an
   * explicit, confirmed operator command; nothing in the agent calls it on its own.
   */
  async rollbackSnapshot(
    node: string,
    vmid: number,
    name: string,
    options: { start?: boolean } = {},
  ): Promise<string> {
    const form: Record<string, string> = {};
    if (options.start !== undefined) form.start = options.start ? "1" : "0";
    return this.#task(
      "POST",
      `/nodes/${seg(node)}/lxc/${vmidArg(vmid)}/snapshot/${snapshotArg(name)}/rollback`,
      {
        form,
      },
    );
  }

  /** The token's effective (privsep-intersected) privileges, for all paths or one. */
  async permissions(options: { path?: string; userid?: string } = {}, signal?: AbortSignal) {
    return this.#get(permissionsSchema, "/access/permissions", { ...options }, signal);
  }

  async certificates(node: string, signal?: AbortSignal) {
    return this.#get(certificateSchema.array(), `/nodes/${seg(node)}/certificates/info`, undefined, signal);
  }

  close(): Promise<void> {
    return this.#transport.close();
  }
}

function validate<S extends z.ZodType>(schema: S, data: unknown, label: string): z.infer<S> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PveResponseError(label, `${issue?.path.join(".") || "data"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}
