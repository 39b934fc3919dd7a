import { splitTokenId } from "./access-model.ts";
import type { Route } from "./api-server.ts";
import { paramError } from "./http-error.ts";
import { stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";
import type { Task } from "./task-registry.ts";
import { decodeUpid } from "./upid.ts";

/** Tasks.pm `$check_task_user`: a token sees only its own tasks; a user its own and its tokens'. */
export function ownsTask(taskUser: string, user: string): boolean {
  if (splitTokenId(user)) return taskUser === user;
  return taskUser === user || splitTokenId(taskUser)?.userid === user;
}

/** Tasks.pm `$convert_token_task`: the UPID user split into `user` + `tokenid`. */
function userFields(taskUser: string): { user: string; tokenid?: string } {
  const tok = splitTokenId(taskUser);
  return tok ? { user: tok.userid, tokenid: tok.tokenName } : { user: taskUser };
}

/** PVE::UPID `normalize_status_type`: no status yet, and an `exit(-1)` ("unexpected status"), are unknown. */
function statusType(t: Task): "ok" | "warning" | "error" | "unknown" {
  if (t.running || !t.exitstatus || t.exitstatus === "unexpected status") return "unknown";
  if (t.exitstatus === "OK") return "ok";
  if (/^WARNINGS: \d+$/.test(t.exitstatus)) return "warning";
  return "error";
}

export function taskRoutes(sim: PveSimulator): Route[] {
  const upidProp = { type: "string", maxLength: 256 } as const;
  /** upid_decode + the log file of that UPID on the URL node. */
  const lookup = (node: string, upid: string): Task | undefined => {
    if (!decodeUpid(upid)) throw paramError({ upid: "unable to parse worker upid" });
    sim.assertNode(node);
    const t = sim.taskRegistry.find(upid);
    return t && t.node === node ? t : undefined;
  };
  const mustOwn = (user: string, taskUser: string, node: string, priv: string) => {
    if (!ownsTask(taskUser, user)) sim.access.check(user, `/nodes/${node}`, [priv]);
  };
  return [
    {
      method: "GET",
      path: "/nodes/{node}/tasks/{upid}/status",
      schema: { node: stdProps.node, upid: upidProp },
      handler: ({ user, params }) => {
        const node = String(params.node);
        const upid = String(params.upid);
        const t = lookup(node, upid);
        if (!t) throw paramError({ upid: "no such task" });
        mustOwn(user, t.user, node, "Sys.Audit");
        return {
          upid,
          node: t.node,
          pid: t.pid,
          pstart: t.pstart,
          starttime: t.starttime,
          type: t.type,
          id: t.id,
          ...userFields(t.user),
          status: t.running ? "running" : "stopped",
          ...(t.running ? {} : { exitstatus: t.exitstatus }),
        };
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/tasks/{upid}/log",
      schema: {
        node: stdProps.node,
        upid: upidProp,
        start: { type: "integer", minimum: 0, optional: true },
        limit: { type: "integer", minimum: 0, optional: true },
        download: { type: "boolean", optional: true },
      },
      handler: (ctx) => {
        const { user, params } = ctx;
        const node = String(params.node);
        const upid = String(params.upid);
        const t = lookup(node, upid);
        mustOwn(user, t?.user ?? decodeUpid(upid)?.user ?? "", node, "Sys.Audit");
        if (!t) {
          ctx.attrs.total = 1;
          return [{ n: 1, t: "unable to open file - No such file or directory" }];
        }
        // PVE::Tools::dump_logfile
        const start = Number(params.start ?? 0);
        let limit = Number(params.limit ?? 50);
        const toEnd = limit === 0;
        const out: Array<{ n: number; t: string }> = [];
        t.lines.forEach((line, i) => {
          if (i < start) return;
          if (!toEnd) {
            if (limit <= 0) return;
            limit--;
          }
          out.push({ n: i + 1, t: line });
        });
        let total = t.lines.length;
        if (total === 0) {
          total = 1;
          out.push({ n: 1, t: "no content" });
        }
        ctx.attrs.total = total;
        return out;
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/tasks/{upid}",
      schema: { node: stdProps.node, upid: upidProp },
      handler: ({ user, params }) => {
        const node = String(params.node);
        const t = lookup(node, String(params.upid));
        if (!t) throw paramError({ upid: "no such task" });
        mustOwn(user, t.user, node, "Sys.Modify");
        sim.taskRegistry.stop(t.upid);
        return null;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/tasks",
      schema: {
        node: stdProps.node,
        start: { type: "integer", minimum: 0, optional: true },
        limit: { type: "integer", minimum: 0, optional: true },
        userfilter: { type: "string", optional: true },
        typefilter: { type: "string", optional: true },
        vmid: { ...stdProps.vmid, optional: true },
        errors: { type: "boolean", optional: true },
        source: { type: "string", enum: ["archive", "active", "all"], optional: true },
        since: { type: "integer", optional: true },
        until: { type: "integer", optional: true },
        statusfilter: {
          type: "string",
          optional: true,
          format: (v) =>
            v.split(/[,;\s]+/).every((s) => ["ok", "warning", "error", "unknown"].includes(s))
              ? undefined
              : "invalid status type",
        },
      },
      handler: (ctx) => {
        const { user, params } = ctx;
        const node = String(params.node);
        sim.assertNode(node);
        const auditor = sim.access.has(user, `/nodes/${node}`, "Sys.Audit");
        const source = String(params.source ?? "archive");
        const statusfilter =
          typeof params.statusfilter === "string" ? new Set(params.statusfilter.split(/[,;\s]+/)) : undefined;
        const userfilter =
          typeof params.userfilter === "string" ? params.userfilter.toLowerCase() : undefined;
        // Tasks.pm `index`: the filter sees an active task's UPID user as it is (`user@realm!token`), an
        // archived one's after `$convert_token_task` (the split `user`).
        const list = sim.taskRegistry.all.filter((t) => {
          if (t.node !== node) return false;
          if (source === "archive" && t.running) return false;
          if (source === "active" && !t.running) return false;
          const listedUser = t.running ? t.user : userFields(t.user).user;
          if (userfilter && !listedUser.toLowerCase().includes(userfilter)) return false;
          if (!auditor && !ownsTask(t.user, user)) return false;
          if (params.typefilter !== undefined && t.type !== params.typefilter) return false;
          if (params.vmid !== undefined && t.id !== String(params.vmid)) return false;
          if (params.since !== undefined && t.starttime < Number(params.since)) return false;
          if (params.until !== undefined && t.starttime > Number(params.until)) return false;
          const type = statusType(t);
          if (params.errors && type === "ok") return false;
          if (statusfilter && !statusfilter.has(type)) return false;
          return true;
        });
        list.sort((a, b) => b.starttime - a.starttime || b.pid - a.pid);
        ctx.attrs.total = list.length;
        const start = Number(params.start ?? 0);
        // `return 1 if $limit <= 0`: unlike a task log's, a task list's limit=0 lists nothing.
        const limit = Number(params.limit ?? 50);
        return list.slice(start, start + limit).map((t) => ({
          upid: t.upid,
          node: t.node,
          pid: t.pid,
          pstart: t.pstart,
          starttime: t.starttime,
          type: t.type,
          id: t.id,
          // An active task is read from the active-workers file unconverted, its status set to RUNNING.
          ...(t.running
            ? { user: t.user, status: "RUNNING" }
            : { ...userFields(t.user), endtime: t.endtime, status: t.exitstatus }),
        }));
      },
    },
  ];
}
