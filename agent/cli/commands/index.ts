import { type Command, SNAPSHOT_CONFIRM } from "./command.ts";

export type { Command };

export const commands: Record<string, Command> = {
  run: {
    args: "",
    summary: "the daemon (systemd runs it): recovery at start, the schedule, the hub link",
    options: {},
    asRoot: true,
    load: () => import("./run.ts").then((m) => m.run),
  },
  backup: {
    args: "[--mode snapshot|stop] [--json]",
    summary: "back this guest up now: quiesce the stacks, vzdump, resume at the snapshot, verify",
    help: `--mode   snapshot (default from the config; stacks down for seconds) or stop (the whole guest,
         this agent included, goes down until the archive is written; the next boot reports)
--json   print only the result, as JSON (the same fields as the hub's backup.completed / backup.failed)

When the daemon runs, it runs the backup (so that the hub sees it) and this command shows its progress;
Ctrl-C then only stops watching. Without a daemon the backup runs in this process.

Exit 0 when the archive is verified in the storage, 1 when the backup failed, 75 when another backup
is running or the node's vzdump lock is busy.`,
    options: { mode: { type: "string" }, json: { type: "boolean" } },
    asRoot: true,
    load: () => import("./backup.ts").then((m) => m.run),
  },
  backups: {
    args: "[--json]",
    summary: "list this guest's archives in the backup storage",
    options: { json: { type: "boolean" } },
    asRoot: true,
    load: () => import("./backups.ts").then((m) => m.run),
  },
  snapshot: {
    args: `create NAME [--description TEXT] | list | delete NAME | rollback NAME --${SNAPSHOT_CONFIRM}  [--json]`,
    summary: "PVE snapshots of this guest, taken with the same quiesce as a backup",
    help: `create    quiesce the stacks, snapshot the guest, resume (e.g. before an upgrade)
list      the guest's snapshots
delete    remove a snapshot
rollback  roll the guest back to a snapshot. PVE KILLS the running container to do so (this agent and
          every stack with it) and starts it again from the snapshot. Only with --${SNAPSHOT_CONFIRM}.
Names: a letter, then letters, digits, - or _ (2-40 characters); "current" and "vzdump" are reserved.`,
    options: {
      description: { type: "string" },
      json: { type: "boolean" },
      [SNAPSHOT_CONFIRM]: { type: "boolean" },
    },
    asRoot: true,
    load: () => import("./snapshot.ts").then((m) => m.run),
  },
  status: {
    args: "[--json]",
    summary: "identity, last backup, next scheduled run, and anything left unfinished",
    options: { json: { type: "boolean" } },
    asRoot: true,
    load: () => import("./status.ts").then((m) => m.run),
  },
  stacks: {
    args: "[up [PROJECT…]] [--json]",
    summary: "the compose stacks found on this guest, how each service would be quiesced, and warnings",
    help: `stacks            list the stacks (running or not), each service's strategy, and warnings
stacks up [P…]    compose up -d for every remembered stack (or the named ones), in dependency order,
                  waiting for healthchecks: what the agent does after a restore. Refused (exit 75)
                  while a backup or snapshot runs (it brings its stacks back by itself the moment the
                  storage snapshot exists), and no backup starts while it runs. To start a container
                  in the middle of a backup anyway, use docker start: that backup may then not be
                  app-consistent`,
    options: { json: { type: "boolean" } },
    asRoot: true,
    load: () => import("./stacks.ts").then((m) => m.run),
  },
  doctor: {
    args: "[--json]",
    summary:
      "check the config, the token's real permissions, TLS, identity, Docker and compose, the hub, and say what is wrong",
    help: `--json   print only the findings, as JSON ([{level: ok|warn|error, message, hint?}])

Exit 0 when nothing failed (warnings included), 1 when a check failed, 78 when the config itself is invalid.`,
    options: { json: { type: "boolean" } },
    asRoot: true,
    load: () => import("./doctor.ts").then((m) => m.run),
  },
  enroll: {
    args: "--vmid N --token-id USER@REALM!NAME --token-secret-file FILE|-  [--json]",
    summary: "give this guest (e.g. a restored copy) its own PVE token and vmid",
    help: `The token must be scoped to this guest's own vmid (see /usr/share/doc/felhom-guest/restore.md). It is
checked against PVE first: it must see CT N, whose MAC, hostname and run state are this guest's. Only then
is the secret written (mode 0600) to <state_dir>/enrollment/ and <state_dir>/enrollment.json made to
override pve.token_id, pve.token_secret_file and pve.vmid of the config. The secret is read from FILE
(mode 0600) or, with "-", typed at a prompt that does not echo it (or piped in: - < FILE); never from the
command line or a here-string, which land in the shell's history. Restart the daemon afterwards
(systemctl restart felhom-guest); the hub command "enroll" needs no restart.`,
    options: {
      vmid: { type: "string" },
      "token-id": { type: "string" },
      "token-secret-file": { type: "string" },
      json: { type: "boolean" },
    },
    asRoot: true,
    load: () => import("./enroll.ts").then((m) => m.run),
  },
  secret: {
    args: "FILE",
    summary:
      "store a secret (the PVE token secret, the hub credential) in FILE, mode 0600, kept out of shell history",
    help: `Typed at a prompt that does not echo it, or read from stdin (felhom-guest secret FILE < /root/token.txt),
never from the command line: an argument or a here-string (<<<) lands in the shell's history. FILE is
replaced atomically with mode 0600 and checked as the agent checks it at start (owned by root, in a
directory only root can write). Then point pve.token_secret_file or hub.credential_file at it.`,
    options: {},
    asRoot: true,
    load: () => import("./secret.ts").then((m) => m.run),
  },
  version: {
    args: "",
    summary: "print the agent's version (also: --version)",
    options: {},
    asRoot: false,
    load: () => import("./version.ts").then((m) => m.run),
  },
};
