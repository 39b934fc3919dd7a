import type { Route } from "./api-server.ts";
import { configDigest, type Guest, hostnameOf, uptimeOf } from "./cluster-model.ts";
import { dieError, paramError } from "./http-error.ts";
import { formats, stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";

const GiB = 1024 ** 3;

function vmStats(g: Guest) {
  return {
    maxcpu: Number(g.config.cores ?? 1),
    cpu: g.running ? 0.0123 : 0,
    maxmem: Number(g.config.memory ?? 512) * 1024 * 1024,
    mem: g.running ? 256 * 1024 * 1024 : 0,
    maxdisk: 8 * GiB,
    disk: g.running ? 2 * GiB : 0,
    netin: 0,
    netout: 0,
    diskread: 0,
    diskwrite: 0,
  };
}

/** Self-discovery and guest read endpoints (pve-manager Cluster.pm, pve-container Status.pm/Config.pm). */
export function guestRoutes(sim: PveSimulator): Route[] {
  const audit = (user: string, raw: Record<string, string>) =>
    sim.access.check(user, `/vms/${raw.vmid}`, ["VM.Audit"]);
  return [
    {
      method: "GET",
      path: "/cluster/resources",
      schema: { type: { type: "string", optional: true, enum: ["vm", "storage", "node", "sdn"] } },
      handler: ({ user, params }) => {
        const type = params.type;
        const out: Record<string, unknown>[] = [];
        if (type === undefined || type === "vm") {
          for (const g of [...sim.guests.values()].sort((a, b) => a.vmid - b.vmid)) {
            if (!sim.access.has(user, `/vms/${g.vmid}`, "VM.Audit")) continue;
            out.push({
              id: `lxc/${g.vmid}`,
              vmid: g.vmid,
              node: g.node,
              type: "lxc",
              status: g.running ? "running" : "stopped",
              name: hostnameOf(g),
              uptime: uptimeOf(g),
              template: g.template ? 1 : 0,
              ...vmStats(g),
              ...(g.lock ? { lock: g.lock } : {}),
              ...(g.config.tags ? { tags: g.config.tags } : {}),
              ...(g.haManaged ? { hastate: "started" } : {}),
            });
          }
        }
        if (type === undefined || type === "node") {
          for (const n of sim.nodes) {
            const full = sim.access.has(user, `/nodes/${n}`, "Sys.Audit");
            out.push({
              id: `node/${n}`,
              node: n,
              type: "node",
              status: "online",
              level: "",
              ...(full
                ? {
                    maxcpu: 2,
                    cpu: 0.05,
                    maxmem: 16 * GiB,
                    mem: 4 * GiB,
                    maxdisk: 100 * GiB,
                    disk: 10 * GiB,
                    uptime: 86400,
                  }
                : {}),
            });
          }
        }
        if (type === undefined || type === "storage") {
          for (const s of sim.storages.values()) {
            if (!sim.access.has(user, `/storage/${s.id}`, "Datastore.Audit")) continue;
            for (const n of s.nodes ?? sim.nodes) {
              out.push({
                id: `storage/${n}/${s.id}`,
                storage: s.id,
                node: n,
                type: "storage",
                status: "available",
                plugintype: "dir",
                content: s.content.join(","),
                shared: s.nodes ? 0 : 1,
                disk: 0,
                maxdisk: 100 * GiB,
              });
            }
          }
        }
        return out;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc",
      schema: { node: stdProps.node },
      handler: ({ user, params }) => {
        const node = String(params.node);
        sim.assertNode(node);
        return [...sim.guests.values()]
          .filter((g) => g.node === node && sim.access.has(user, `/vms/${g.vmid}`, "VM.Audit"))
          .sort((a, b) => a.vmid - b.vmid)
          .map((g) => ({
            vmid: g.vmid,
            type: "lxc",
            name: hostnameOf(g),
            status: g.running ? "running" : "stopped",
            uptime: uptimeOf(g),
            cpus: Number(g.config.cores ?? 1),
            ...vmStats(g),
            ...(g.lock ? { lock: g.lock } : {}),
            ...(g.config.tags ? { tags: g.config.tags } : {}),
          }));
      },
    },
    {
      // pve-container API2/LXC.pm `vm_feature` (VM.Audit); LXC/Config.pm `has_feature` returns `$err ? 0 : 1`,
      // so the JSON has 1 or 0 (the agent takes any perl false: 0, "", null). It passes no $backup_only: a bind
      // mount or a backup=0 volume on a storage without snapshots makes it 0 even where vzdump (whose
      // snapshot_create passes 1) would snapshot. Only `hasFeature` (`nodes` is commented out).
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/feature",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        feature: { type: "string", enum: ["snapshot", "clone", "copy"] },
        snapname: { type: "string", optional: true },
      },
      permission: audit,
      handler: ({ params }) => {
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        const snap = typeof params.snapname === "string" ? params.snapname : undefined;
        if (snap !== undefined && !g.snapshots.has(snap)) throw dieError(`snapshot '${snap}' does not exist`);
        const judged = snap === undefined ? g : { ...g, config: g.snapshots.get(snap)!.config };
        const blocked = params.feature === "snapshot" && sim.snapshotBlockers(judged, false).length > 0;
        return { hasFeature: blocked ? 0 : 1 };
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/status/current",
      schema: { node: stdProps.node, vmid: stdProps.vmid },
      permission: audit,
      handler: ({ params }) => {
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        return {
          vmid: g.vmid,
          type: "lxc",
          status: g.running ? "running" : "stopped",
          name: hostnameOf(g),
          ...(g.running ? { pid: 10000 + g.vmid } : {}),
          cpus: Number(g.config.cores ?? 1),
          ...vmStats(g),
          swap: 0,
          maxswap: Number(g.config.swap ?? 0) * 1024 * 1024,
          uptime: uptimeOf(g),
          pressurecpusome: 0,
          pressurecpufull: 0,
          pressureiosome: 0,
          pressureiofull: 0,
          pressurememorysome: 0,
          pressurememoryfull: 0,
          ha: g.haManaged ? { managed: 1, state: "started", group: null } : { managed: 0 },
          ...(g.template ? { template: 1 } : {}),
          ...(g.config.tags ? { tags: g.config.tags } : {}),
          ...(g.lock ? { lock: g.lock } : {}),
        };
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/config",
      schema: {
        node: stdProps.node,
        vmid: stdProps.vmid,
        current: { type: "boolean", optional: true },
        snapshot: { type: "string", optional: true, format: formats.configId, maxLength: 40 },
      },
      permission: audit,
      handler: ({ params }) => {
        if (params.snapshot !== undefined && params.current)
          throw paramError({
            snapshot: "cannot use 'snapshot' parameter with 'current'",
            current: "cannot use 'current' parameter with 'snapshot'",
          });
        const g = sim.guestOn(String(params.node), Number(params.vmid));
        if (params.snapshot !== undefined) {
          const s = g.snapshots.get(String(params.snapshot));
          if (!s) throw dieError(`snapshot '${params.snapshot}' does not exist`);
          return {
            ...s.config,
            ...(s.parent ? { parent: s.parent } : {}),
            snaptime: s.snaptime,
            description: s.description,
            digest: configDigest(g),
          };
        }
        return {
          ...g.config,
          ...(g.lock ? { lock: g.lock } : {}),
          ...(g.parent ? { parent: g.parent } : {}),
          digest: configDigest(g),
        };
      },
    },
  ];
}
