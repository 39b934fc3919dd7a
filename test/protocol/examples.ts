import type {
  CommandName,
  CommandOf,
  CommandResultData,
  EventKind,
  EventOf,
  Message,
  MessageType,
} from "@felhom/protocol";

/** One valid instance of every message type, command, result and event kind; typed so none can be missing. */

const at = "2026-11-27T07:30:00.000Z";
const upid = "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:101:agent@pve!backup:";
const snapUpid = "UPID:pve1:0012AB40:0456CD80:66F1A2C0:vzsnapshot:101:agent@pve!backup:";
const volid = "local:backup/vzdump-lxc-101-2026_11_27-07_30_00.tar.zst";
const downtime = [
  {
    project: "shop",
    service: "db",
    strategy: "stop" as const,
    downtimeMs: 3100,
    breakdown: { quiesceMs: 700, pveMs: 1650, noticeMs: 250, resumeMs: 500 },
  },
  { project: "shop", service: "web", strategy: "pause" as const, downtimeMs: 900 },
];

const status: Omit<EventOf<"status">, "kind"> = {
  identity: { state: "verified", vmid: 101, node: "pve1", hostname: "app-101" },
  agentVersion: "0.1.0",
  uptimeSeconds: 3600,
  stacks: [
    {
      project: "shop",
      state: "running",
      services: [
        { name: "db", state: "running", quiesce: "stop" },
        { name: "web", state: "running", quiesce: "pause" },
      ],
    },
  ],
  lastBackup: {
    backupId: "b-20261127-0300",
    mode: "snapshot",
    ok: true,
    finishedAt: at,
    volid,
    sizeBytes: 2_684_354_560,
    downtimeMs: 4000,
  },
  nextScheduledRun: "2026-11-28T03:00:00.000Z",
  outboxDepth: 0,
  lastSeq: 41,
  runningOperation: null,
};

export const commands: { [N in CommandName]: CommandOf<N> } = {
  "backup.run": { name: "backup.run", params: { mode: "snapshot", reason: "before upgrade" } },
  "snapshot.create": { name: "snapshot.create", params: { name: "pre-upgrade_1", description: "before v2" } },
  "snapshot.list": { name: "snapshot.list", params: {} },
  "snapshot.delete": { name: "snapshot.delete", params: { name: "pre-upgrade_1" } },
  "backups.list": { name: "backups.list", params: {} },
  "status.get": { name: "status.get", params: {} },
  "stacks.up": { name: "stacks.up", params: { projects: ["shop"] } },
  enroll: {
    name: "enroll",
    params: { vmid: 205, tokenId: "agent-205@pve!backup", tokenSecret: "s3cr3t-uuid" },
  },
  "config.reload": { name: "config.reload", params: {} },
};

export const resultData: { [N in CommandName]: CommandResultData<N> } = {
  "backup.run": { backupId: "b-20261127-0730", mode: "snapshot" },
  "snapshot.create": { operationId: "s-20261127-0731", name: "pre-upgrade_1" },
  "snapshot.list": {
    snapshots: [
      { name: "pre-upgrade_1", description: "before v2", takenAt: at, parent: null },
      { name: "current", description: "You are here!", takenAt: null, parent: "pre-upgrade_1" },
    ],
  },
  "snapshot.delete": { operationId: "s-20261127-0732", name: "pre-upgrade_1" },
  "backups.list": {
    storage: "local",
    backups: [
      {
        volid,
        sizeBytes: 2_684_354_560,
        createdAt: at,
        notes: "felhom-guest b-20261127-0730",
        backupId: "b-20261127-0730",
        protected: false,
      },
    ],
  },
  "status.get": status,
  "stacks.up": { stacks: [{ project: "shop", outcome: "started" }] },
  enroll: { vmid: 205, node: "pve2", identityState: "verified" },
  "config.reload": { changedKeys: ["schedule.cron"] },
};

export const events: { [K in EventKind]: EventOf<K> } = {
  "backup.phase": {
    kind: "backup.phase",
    backupId: "b-20261127-0730",
    mode: "snapshot",
    phase: "quiesce",
    trigger: { source: "hub", commandId: "cmd-1" },
  },
  "backup.progress": {
    kind: "backup.progress",
    backupId: "b-20261127-0730",
    phase: "follow",
    bytes: 1_073_741_824,
    totalBytes: 2_684_354_560,
    percent: 40,
    line: "INFO: 40% (1.0 GiB of 2.5 GiB) in 9s",
  },
  "backup.completed": {
    kind: "backup.completed",
    backupId: "b-20261127-0730",
    mode: "snapshot",
    upid,
    volid,
    sizeBytes: 2_684_354_560,
    totalMs: 27_000,
    downtime,
    exitStatus: "OK",
    warnings: [],
    consistency: "app",
    stacksResumed: true,
  },
  "backup.failed": {
    kind: "backup.failed",
    backupId: "b-20261127-0730",
    mode: "snapshot",
    phase: "follow",
    code: "pve_task_failed",
    message: "vzdump task failed: 403 Permission check failed (/vms/101, VM.Backup)",
    exitStatus: "403 Permission check failed (/vms/101, VM.Backup)",
    upid,
    logTail: ["INFO: starting new backup job: vzdump 101", "ERROR: Backup of VM 101 failed"],
    stacksResumed: true,
  },
  "snapshot.created": {
    kind: "snapshot.created",
    operationId: "s-20261127-0731",
    name: "pre-upgrade_1",
    upid: snapUpid,
    downtime,
    consistency: "app",
    stacksResumed: true,
  },
  "snapshot.deleted": {
    kind: "snapshot.deleted",
    operationId: "s-20261127-0732",
    name: "pre-upgrade_1",
    upid: snapUpid,
  },
  "snapshot.failed": {
    kind: "snapshot.failed",
    operationId: "s-20261127-0731",
    action: "create",
    name: "pre-upgrade_1",
    code: "pve_task_failed",
    message: "snapshot name 'pre-upgrade_1' already used",
    upid: snapUpid,
    logTail: ["snapshot name 'pre-upgrade_1' already used"],
    stacksResumed: true,
  },
  "restore.detected": {
    kind: "restore.detected",
    fromBackupId: "b-20261127-0300",
    takenAt: at,
    signals: ["marker", "uptime"],
    stacks: [{ project: "shop", outcome: "started" }],
  },
  "identity.warning": {
    kind: "identity.warning",
    state: "restored-copy",
    signal: "mac-mismatch",
    message: "eth0 is BC:24:11:00:00:02 but net0 of vmid 101 is BC:24:11:00:00:01",
    vmid: 101,
  },
  blackout: {
    kind: "blackout",
    reason: "snapshot-freeze",
    expectedSeconds: 30,
    operationId: "b-20261127-0730",
  },
  "blackout.ended": { kind: "blackout.ended", reason: "snapshot-freeze", operationId: "b-20261127-0730" },
  status: { kind: "status", ...status },
  gap: {
    kind: "gap",
    fromSeq: 10,
    toSeq: 19,
    count: 10,
    kinds: ["backup.progress"],
    reason: "outbox-overflow",
  },
};

/** Every top-level message type, at least once; commands, results and events once per name/kind. */
export const messages: { type: MessageType; label: string; message: Message }[] = [
  {
    type: "hello",
    label: "hello",
    message: {
      type: "hello",
      protocolVersion: 1,
      agent: { id: "agt-7f3c", version: "0.1.0" },
      identity: { state: "verified", vmid: 101, node: "pve1", hostname: "app-101" },
      capabilities: ["backup.run", "snapshot.create", "enroll"],
      lastAckedSeq: 40,
      session: { runId: "run-5d2e", resume: true },
    },
  },
  {
    type: "welcome",
    label: "welcome",
    message: {
      type: "welcome",
      protocolVersion: 1,
      lastAckedSeq: 38,
      heartbeat: { intervalMs: 25_000, timeoutMs: 10_000 },
      serverTime: at,
    },
  },
  ...Object.values(commands).map((command, i) => ({
    type: "command" as const,
    label: `command ${command.name}`,
    message: { type: "command" as const, id: `cmd-${i}`, command } as Message,
  })),
  ...(Object.keys(resultData) as CommandName[]).map((name, i) => ({
    type: "result" as const,
    label: `result ${name}`,
    message: { type: "result", id: `cmd-${i}`, ok: true, name, data: resultData[name] } as Message,
  })),
  {
    type: "result",
    label: "result failed",
    message: {
      type: "result",
      id: "cmd-0",
      ok: false,
      name: "backup.run",
      error: {
        code: "already_running",
        message: "backup b-20261127-0730 is running",
        retryable: false,
        details: { backupId: "b-20261127-0730" },
      },
    },
  },
  ...Object.values(events).map((event, i) => ({
    type: "event" as const,
    label: `event ${event.kind}`,
    message: { type: "event" as const, seq: 41 + i, at, event } as Message,
  })),
  {
    type: "event",
    label: "event backup.failed, a busy refusal that will be retried",
    message: {
      type: "event",
      seq: 90,
      at,
      event: {
        ...events["backup.failed"],
        phase: "snapshot-wait",
        code: "vzdump_lock_busy",
        message:
          "the node's vzdump lock is held by another backup; the agent tries again later (up to 9 more times)",
        exitStatus: "can't acquire lock '/var/run/vzdump.lock' (wait = 0)",
        retry: { attempt: 1, retriesLeft: 9, inSeconds: 47 },
      },
    },
  },
  { type: "ack", label: "ack", message: { type: "ack", seq: 41 } },
  { type: "ping", label: "ping", message: { type: "ping", id: "p-1", at } },
  { type: "pong", label: "pong", message: { type: "pong", id: "p-1", at } },
  {
    type: "error",
    label: "error",
    message: {
      type: "error",
      code: "unknown_message_type",
      message: 'unknown message type: "type" is "subscribe"',
      ref: { type: "subscribe", id: "x-1" },
    },
  },
];
