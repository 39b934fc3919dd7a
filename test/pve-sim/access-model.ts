import { permError } from "./http-error.ts";

/**
 * The access-control model of pve-access-control: users, groups, tokens, roles and ACL entries, and the
 * permission computation of AccessControl.pm `roles` + RPCEnvironment.pm `permissions` (path walk from `/`,
 * deeper entries replace inherited ones, token > user > group at each level, NoAccess wins, privsep tokens
 * intersected per path with their user). Pools are not modelled.
 */
export interface UserEntry {
  userid: string;
  enable: boolean;
  groups: Set<string>;
  tokens: Map<string, { privsep: boolean; secret: string; expire: number }>;
}

export interface AclEntry {
  path: string;
  role: string;
  propagate: boolean;
  /** exactly one of these */
  user?: string;
  group?: string;
  token?: string;
}

export type Privs = Record<string, 0 | 1>;

export const ALL_PRIVS = [
  "Datastore.Allocate",
  "Datastore.AllocateSpace",
  "Datastore.AllocateTemplate",
  "Datastore.Audit",
  "Group.Allocate",
  "Mapping.Audit",
  "Mapping.Modify",
  "Mapping.Use",
  "Permissions.Modify",
  "Pool.Allocate",
  "Pool.Audit",
  "Realm.Allocate",
  "Realm.AllocateUser",
  "SDN.Allocate",
  "SDN.Audit",
  "SDN.Use",
  "Sys.AccessNetwork",
  "Sys.Audit",
  "Sys.Console",
  "Sys.Incoming",
  "Sys.Modify",
  "Sys.PowerMgmt",
  "Sys.Syslog",
  "User.Modify",
  "VM.Allocate",
  "VM.Audit",
  "VM.Backup",
  "VM.Clone",
  "VM.Config.CDROM",
  "VM.Config.CPU",
  "VM.Config.Cloudinit",
  "VM.Config.Disk",
  "VM.Config.HWType",
  "VM.Config.Memory",
  "VM.Config.Network",
  "VM.Config.Options",
  "VM.Console",
  "VM.GuestAgent.Audit",
  "VM.GuestAgent.FileRead",
  "VM.GuestAgent.FileWrite",
  "VM.GuestAgent.FileSystemMgmt",
  "VM.GuestAgent.Unrestricted",
  "VM.Migrate",
  "VM.PowerMgmt",
  "VM.Replicate",
  "VM.Snapshot",
  "VM.Snapshot.Rollback",
];

const BUILTIN_ROLES: Record<string, string[]> = {
  Administrator: ALL_PRIVS,
  NoAccess: [],
  PVEAuditor: ["Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit"],
  PVEDatastoreUser: ["Datastore.AllocateSpace", "Datastore.Audit"],
  PVEDatastoreAdmin: [
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
  ],
  PVEVMUser: [
    "VM.Audit",
    "VM.Backup",
    "VM.Config.CDROM",
    "VM.Config.Cloudinit",
    "VM.Console",
    "VM.PowerMgmt",
  ],
  PVESysAdmin: ["Sys.Audit", "Sys.Console", "Sys.Syslog", "Sys.Modify", "Sys.PowerMgmt"],
};

export function splitTokenId(tokenid: string): { userid: string; tokenName: string } | undefined {
  const m = /^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$/.exec(tokenid);
  return m ? { userid: m[1] as string, tokenName: m[2] as string } : undefined;
}

/** PVE normalize_path: collapse slashes, drop the trailing one. */
export function normalizePath(path: string): string {
  const p = `/${path}`.replace(/\/+/g, "/").replace(/\/$/, "");
  return p === "" ? "/" : p;
}

export class AccessModel {
  readonly users = new Map<string, UserEntry>();
  readonly groups = new Map<string, Set<string>>();
  readonly roles = new Map<string, Set<string>>();
  acl: AclEntry[] = [];

  constructor() {
    for (const [name, privs] of Object.entries(BUILTIN_ROLES)) this.roles.set(name, new Set(privs));
    this.addUser("root@pam");
  }

  addUser(userid: string, opts: { enable?: boolean; groups?: string[] } = {}): UserEntry {
    const entry: UserEntry = { userid, enable: opts.enable ?? true, groups: new Set(), tokens: new Map() };
    this.users.set(userid, entry);
    for (const g of opts.groups ?? []) this.addToGroup(userid, g);
    return entry;
  }

  addToGroup(userid: string, group: string): void {
    if (!this.groups.has(group)) this.groups.set(group, new Set());
    this.groups.get(group)?.add(userid);
    this.users.get(userid)?.groups.add(group);
  }

  /** `expire` is epoch seconds, 0 = never. */
  addToken(
    userid: string,
    tokenName: string,
    opts: { privsep?: boolean; secret: string; expire?: number },
  ): string {
    const user = this.users.get(userid);
    if (!user) throw new Error(`no such user '${userid}'`);
    if (!/^[A-Za-z][A-Za-z0-9.\-_]+$/.test(tokenName))
      throw new Error(`invalid token name '${tokenName}' (PVE: [A-Za-z][A-Za-z0-9.-_]+)`);
    user.tokens.set(tokenName, {
      privsep: opts.privsep ?? true,
      secret: opts.secret,
      expire: opts.expire ?? 0,
    });
    return `${userid}!${tokenName}`;
  }

  addRole(name: string, privs: readonly string[]): void {
    for (const p of privs) if (!ALL_PRIVS.includes(p)) throw new Error(`invalid privilege '${p}'`);
    this.roles.set(name, new Set(privs));
  }

  setAcl(entry: {
    path: string;
    role: string;
    propagate?: boolean;
    user?: string;
    group?: string;
    token?: string;
  }): void {
    const e: AclEntry = { ...entry, path: normalizePath(entry.path), propagate: entry.propagate ?? true };
    this.acl = this.acl.filter(
      (a) =>
        !(
          a.path === e.path &&
          a.role === e.role &&
          a.user === e.user &&
          a.group === e.group &&
          a.token === e.token
        ),
    );
    this.acl.push(e);
  }

  removeAcl(match: { path: string; role?: string; user?: string; group?: string; token?: string }): void {
    const path = normalizePath(match.path);
    this.acl = this.acl.filter(
      (a) =>
        !(
          a.path === path &&
          (match.role === undefined || a.role === match.role) &&
          a.user === match.user &&
          a.group === match.group &&
          a.token === match.token
        ),
    );
  }

  /** AccessControl.pm `roles` for a user or a privsep token: role → propagate. */
  private rolesOf(principal: string, path: string): Map<string, boolean> {
    const isToken = principal.includes("!");
    const user = this.users.get(isToken ? (splitTokenId(principal)?.userid ?? "") : principal);
    let roles = new Map<string, boolean>();
    const parts = path === "/" ? [""] : path.split("/");
    let current = "";
    for (const [i, part] of parts.entries()) {
      current = part === "" ? "/" : current === "/" ? `/${part}` : `${current}/${part}`;
      const final = i === parts.length - 1;
      const here = this.acl.filter((a) => a.path === current);
      const collect = (entries: AclEntry[]): Map<string, boolean> | undefined => {
        let next: Map<string, boolean> | undefined;
        for (const a of entries) {
          if (final || a.propagate) {
            next ??= new Map();
            next.set(a.role, a.propagate);
          }
        }
        return next;
      };
      // Each level replaces what was inherited; token entries first, then user, then group entries.
      const found = isToken
        ? collect(here.filter((a) => a.token === principal)) // a privsep token only gets roles naming the token
        : (collect(here.filter((a) => a.user === principal)) ??
          collect(here.filter((a) => a.group !== undefined && user?.groups.has(a.group))));
      if (found) roles = found;
    }
    if (roles.has("NoAccess")) return new Map([["NoAccess", roles.get("NoAccess") as boolean]]);
    return roles;
  }

  /** RPCEnvironment.pm `permissions`: privilege → propagate flag, for a user or a token id. */
  permissions(principal: string, path: string): Privs {
    path = normalizePath(path);
    const tok = splitTokenId(principal);
    const userid = tok ? tok.userid : principal;
    // root@pam itself has everything; its privsep tokens are still limited to their own ACLs
    if (principal === "root@pam") return Object.fromEntries(ALL_PRIVS.map((p) => [p, 1 as const]));
    const user = this.users.get(userid);
    if (!user?.enable) return {};
    let userPerms: Privs | undefined;
    if (tok) {
      const info = user.tokens.get(tok.tokenName);
      if (!info) return {};
      userPerms = this.permissions(userid, path);
      if (!info.privsep) return userPerms;
    }
    const privs: Privs = {};
    for (const [role, propagate] of this.rolesOf(principal, path)) {
      for (const p of this.roles.get(role) ?? []) privs[p] = privs[p] || (propagate ? 1 : 0);
    }
    if (userPerms) {
      for (const p of Object.keys(privs)) {
        const u = userPerms[p];
        if (u === undefined) delete privs[p];
        else privs[p] = privs[p] && u ? 1 : 0;
      }
    }
    return privs;
  }

  has(principal: string, path: string, priv: string): boolean {
    return this.permissions(principal, path)[priv] !== undefined;
  }

  /** rpcenv->check: every privilege, the first missing one is named. */
  check(principal: string, path: string, privs: readonly string[]): void {
    for (const p of privs) if (!this.has(principal, path, p)) throw permError(`${normalizePath(path)}, ${p}`);
  }

  /** rpcenv->check_any. */
  checkAny(principal: string, path: string, privs: readonly string[]): void {
    if (!privs.some((p) => this.has(principal, path, p)))
      throw permError(`${normalizePath(path)}, ${privs.join("|")}`);
  }

  /** RPCEnvironment `get_effective_permissions`. */
  effectivePermissions(principal: string): Record<string, Privs> {
    const paths = new Set(["/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"]);
    for (const a of this.acl) paths.add(a.path);
    const out: Record<string, Privs> = {};
    for (const p of [...paths].sort()) {
      const perms = this.permissions(principal, p);
      if (Object.keys(perms).length > 0) out[p] = perms;
    }
    return out;
  }

  /** verify_token: the token exists, is not expired, the secret matches, the user is enabled. */
  verifyToken(tokenid: string, secret: string, now = Date.now() / 1000): boolean {
    const tok = splitTokenId(tokenid);
    if (!tok) return false;
    const user = this.users.get(tok.userid);
    const info = user?.tokens.get(tok.tokenName);
    if (!user?.enable || !info) return false;
    if (info.expire && info.expire < now) return false;
    return info.secret === secret;
  }
}
