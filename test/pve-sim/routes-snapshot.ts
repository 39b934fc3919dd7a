import type { Route } from "./api-server.ts";
import { configDigest, type Guest } from "./cluster-model.ts";
import { dieError } from "./http-error.ts";
import { formats, stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";
import { type TaskContext, TaskError } from "./task-registry.ts";

const snapname = { type: "string", format: formats.configId, maxLength: 40 } as const;

/** pve-container API2/LXC/Snapshot.pm; the checks inside the tasks come from AbstractConfig.pm. */
export function snapshotRoutes(sim: PveSimulator): Route[] {
  const perm =
    (privs: string[], any = false) =>
    (user: string, raw: Record<string, string>) =>
      any
        ? sim.access.checkAny(user, `/vms/${raw.vmid}`, privs)
        : sim.access.check(user, `/vms/${raw.vmid}`, privs);
  /** The storage plugin's unprefixed output, as lvcreate/lvremove print it on LVM-thin. */
  const raw = async (ctx: TaskContext, line: string) => {
    if (sim.opts.rawStorageOutput) await ctx.log(line);
  };
  const checkLock = (g: Guest) => {
    if (g.lock) throw new TaskError(`CT is locked (${g.lock})`);
  };
  return [
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/snapshot",
      schema: { node: stdProps.node, vmid: stdProps.vmid },
      permission: perm(["VM.Audit"]),
      handler: ({ params }) => {
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        const list: Record<string, unknown>[] = [...g.snapshots.values()]
          .sort((a, b) => a.snaptime - b.snaptime)
          .map((s) => ({
            name: s.name,
            description: s.description,
            snaptime: s.snaptime,
            ...(s.parent ? { parent: s.parent } : {}),
          }));
        list.push({
          name: "current",
          description: "You are here!",
          running: g.running ? 1 : 0,
          digest: configDigest(g),
          ...(g.parent ? { parent: g.parent } : {}),
        });
        return list;
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/snapshot",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        snapname,
        description: { type: "string", optional: true },
      },
      permission: perm(["VM.Snapshot"]),
      handler: ({ user, params }) => {
        const node = String(params.node);
        const vmid = Number(params.vmid);
        const name = String(params.snapname);
        if (name === "current" || name === "vzdump")
          throw dieError(`unable to use snapshot name '${name}' (reserved name)`);
        sim.assertNode(node);
        return sim.taskRegistry.start(node, "vzsnapshot", String(vmid), user, async (ctx) => {
          const g = sim.guestOn(node, vmid);
          checkLock(g);
          if (g.snapshots.has(name)) throw new TaskError(`snapshot name '${name}' already used`);
          // AbstractConfig.pm snapshot_prepare: has_feature('snapshot') over every mount point
          if (sim.snapshotBlockers(g, false).length > 0)
            throw new TaskError("snapshot feature is not available");
          if (g.template) throw new TaskError("you can't take a snapshot if it's a template");
          g.lock = "snapshot";
          try {
            const path = sim.volumes.snapshotPath(`snap-${vmid}-${name}-${Date.now()}`);
            await sim.volumes.snapshot(g.rootDir, path, true);
            await raw(ctx, `  Logical volume "snap_vm-${vmid}-disk-0_${name}" created.`);
            g.snapshots.set(name, {
              name,
              description: typeof params.description === "string" ? params.description : "",
              snaptime: Math.floor(Date.now() / 1000),
              ...(g.parent ? { parent: g.parent } : {}),
              path,
              config: { ...g.config },
            });
            g.parent = name;
          } finally {
            delete g.lock;
          }
        }).upid;
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        snapname,
        force: { type: "boolean", optional: true },
      },
      permission: perm(["VM.Snapshot"]),
      handler: ({ user, params }) => {
        const node = String(params.node);
        const vmid = Number(params.vmid);
        const name = String(params.snapname);
        sim.assertNode(node);
        return sim.taskRegistry.start(node, "vzdelsnapshot", String(vmid), user, async (ctx) => {
          const g = sim.guestOn(node, vmid);
          const snap = g.snapshots.get(name);
          if (!snap) throw new TaskError(`snapshot '${name}' does not exist`);
          if (!params.force) checkLock(g);
          await sim.volumes.remove(snap.path);
          await raw(ctx, `  Logical volume "snap_vm-${vmid}-disk-0_${name}" successfully removed.`);
          g.snapshots.delete(name);
          for (const s of g.snapshots.values()) {
            if (s.parent !== name) continue;
            if (snap.parent) s.parent = snap.parent;
            else delete s.parent;
          }
          if (g.parent === name) {
            if (snap.parent) g.parent = snap.parent;
            else delete g.parent;
          }
        }).upid;
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        snapname,
        start: { type: "boolean", optional: true },
      },
      permission: perm(["VM.Snapshot", "VM.Snapshot.Rollback"], true),
      handler: ({ user, params }) => {
        const node = String(params.node);
        const vmid = Number(params.vmid);
        const name = String(params.snapname);
        sim.assertNode(node);
        return sim.taskRegistry.start(node, "vzrollback", String(vmid), user, async (ctx) => {
          const g = sim.guestOn(node, vmid);
          const snap = g.snapshots.get(name);
          if (!snap) throw new TaskError(`snapshot '${name}' does not exist`);
          checkLock(g);
          if (g.running) {
            // __snapshot_rollback_vm_stop: lxc-stop --kill
            await sim.opts.onGuestStop?.(vmid, { kill: true });
            g.running = false;
          }
          g.lock = "rollback";
          try {
            await sim.volumes.remove(g.rootDir);
            await sim.volumes.snapshot(snap.path, g.rootDir, false);
            await raw(ctx, `  Logical volume "vm-${vmid}-disk-0" successfully removed.`);
            await raw(ctx, `  Logical volume "vm-${vmid}-disk-0" created.`);
            g.config = { ...snap.config };
            g.parent = name;
          } finally {
            delete g.lock;
          }
          if (params.start) {
            await sim.opts.onGuestStart?.(vmid);
            g.running = true;
            g.startedAt = Date.now();
          }
        }).upid;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
      schema: { node: stdProps.node, vmid: stdProps.vmid, snapname },
      permission: perm(["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"], true),
      handler: ({ params }) => {
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        const s = g.snapshots.get(String(params.snapname));
        if (!s) throw dieError(`snapshot '${params.snapname}' does not exist`);
        return {
          ...s.config,
          description: s.description,
          snaptime: s.snaptime,
          ...(s.parent ? { parent: s.parent } : {}),
        };
      },
    },
    {
      method: "PUT",
      path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        snapname,
        description: { type: "string", optional: true },
      },
      permission: perm(["VM.Snapshot"]),
      handler: ({ params }) => {
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        const s = g.snapshots.get(String(params.snapname));
        if (!s) throw dieError(`snapshot '${params.snapname}' does not exist`);
        if (typeof params.description === "string") s.description = params.description;
        return null;
      },
    },
  ];
}
