import { createHash } from "node:crypto";

/** The simulated cluster: nodes, guests (LXC only) and directory storages. Pure data; I/O lives elsewhere. */
export interface GuestSnapshot {
  name: string;
  description: string;
  snaptime: number;
  parent?: string;
  /** Where the snapshot of the root dir lives on disk. */
  path: string;
  config: Record<string, string | number>;
}

export interface Guest {
  vmid: number;
  node: string;
  running: boolean;
  /** ms epoch of the last start; `uptime` is derived from it. */
  startedAt: number;
  lock?: string;
  template: boolean;
  haManaged: boolean;
  /** The raw config keys (hostname, net0, rootfs, ...), as in /etc/pve/lxc/<vmid>.conf. */
  config: Record<string, string | number>;
  rootDir: string;
  snapshots: Map<string, GuestSnapshot>;
  /** The `parent` key: the snapshot the current state descends from. */
  parent?: string;
}

export interface Storage {
  id: string;
  /**
   * `dir`: archives are files in `<path>/dump`. `pbs`: a Proxmox Backup Server datastore, its snapshots
   * as `<path>/ct/<vmid>/<ISO time>Z/` directories (pbs-store.ts).
   */
  type: "dir" | "pbs";
  /** The storage directory (a `pbs` storage's stand-in for its datastore). */
  path: string;
  /** `pbs`: storage.cfg `server` and `datastore` and `username`, which make the client's repository. */
  pbs?: { server: string; datastore: string; username: string };
  content: string[];
  /** Property string as in storage.cfg, e.g. "keep-last=3,keep-daily=7". */
  pruneBackups?: string;
  maxProtectedBackups?: number;
  /** Nodes the storage is available on; all when unset (a shared storage). */
  nodes?: string[];
  /**
   * Asked at each status read: true when PVE cannot activate or read the storage (an NFS server away, a PBS
   * not answering), which its status then reports as total, avail and used 0 and active 0.
   */
  unreadable?: () => boolean;
}

export function hostnameOf(g: Guest): string {
  return typeof g.config.hostname === "string" ? g.config.hostname : `CT${g.vmid}`;
}

export function hwaddrOf(g: Guest): string | undefined {
  return /(?:^|,)hwaddr=([^,]+)/.exec(String(g.config.net0 ?? ""))?.[1];
}

export function uptimeOf(g: Guest, now = Date.now()): number {
  return g.running ? Math.max(0, Math.floor((now - g.startedAt) / 1000)) : 0;
}

/** The config file text (PVE writes the keys sorted, `description` first as a comment). */
export function renderConfig(
  config: Record<string, string | number>,
  lock?: string,
  parent?: string,
): string {
  const all: Record<string, string | number> = { ...config };
  if (lock) all.lock = lock;
  if (parent) all.parent = parent;
  return Object.keys(all)
    .filter((k) => k !== "description")
    .sort()
    .map((k) => `${k}: ${all[k]}\n`)
    .join("");
}

export function configDigest(g: Guest): string {
  const snaps = [...g.snapshots.values()]
    .map((s) => `\n[${s.name}]\n${renderConfig(s.config, undefined, s.parent)}snaptime: ${s.snaptime}\n`)
    .join("");
  return createHash("sha1")
    .update(renderConfig(g.config, g.lock, g.parent) + snaps)
    .digest("hex");
}

export function defaultGuestConfig(
  vmid: number,
  hostname: string,
  hwaddr: string,
): Record<string, string | number> {
  return {
    arch: "amd64",
    cores: 2,
    features: "keyctl=1,nesting=1",
    hostname,
    memory: 2048,
    net0: `name=eth0,bridge=vmbr0,hwaddr=${hwaddr},ip=dhcp,type=veth`,
    ostype: "debian",
    rootfs: `local-lvm:vm-${vmid}-disk-0,size=8G`,
    swap: 512,
    unprivileged: 1,
  };
}

/** A random MAC with Proxmox's default prefix BC:24:11. */
export function randomHwaddr(): string {
  const b = () =>
    Math.floor(Math.random() * 256)
      .toString(16)
      .toUpperCase()
      .padStart(2, "0");
  return `BC:24:11:${b()}:${b()}:${b()}`;
}
