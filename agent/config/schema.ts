import { backupMode } from "@felhom/protocol";
import { z } from "zod";
import { validateCron, validateTimezone } from "../lib/cron.ts";
import { describeError } from "../lib/errors.ts";
import { checkHubUrl } from "./hub-url.ts";

/**
 * The agent's one config file (`/etc/felhom-guest/agent.yaml`), as written by the operator. Keys are
 * snake_case; unknown keys are errors (a typo must not silently fall back to a default). Secrets are never
 * inline: only paths to 0600 files.
 */

/** A zod refinement from a checker that returns the problem, or undefined when the value is fine. */
function refineWith(check: (value: string) => string | undefined) {
  return (value: string, ctx: z.RefinementCtx) => {
    const problem = check(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  };
}

const positiveSeconds = z.number().positive().max(86_400);

const tlsSchema = z
  .object({
    /** SHA-256 of the node certificate, as `pvenode cert info` prints it (AB:CD:…). */
    fingerprint: z
      .string()
      .regex(
        /^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/,
        "must be 32 colon-separated hex bytes, as `pvenode cert info` prints",
      ),
    /** The cluster CA (`/etc/pve/pve-root-ca.pem`); the URL's host must be in the node certificate's SAN. */
    ca_file: z.string().min(1),
    /** Accept any certificate. Logged loudly on every start. */
    insecure: z.literal(true),
  })
  .partial()
  .strict()
  .refine((t) => [t.fingerprint, t.ca_file, t.insecure].filter((v) => v !== undefined).length === 1, {
    message: "set exactly one of fingerprint, ca_file or insecure",
  });

const retentionSchema = z
  .object({
    keep_last: z.number().int().min(0),
    keep_hourly: z.number().int().min(0),
    keep_daily: z.number().int().min(0),
    keep_weekly: z.number().int().min(0),
    keep_monthly: z.number().int().min(0),
    keep_yearly: z.number().int().min(0),
    /**
     * Whose archives retention removes: `agent` (default) only those this agent made (its backup id in the
     * notes), so a PVE admin's own backups of the guest survive; `all` every backup of the guest, as PVE's
     * prune would (PVE groups by type and vmid only).
     */
    scope: z.enum(["agent", "all"]),
  })
  .partial()
  .strict()
  .refine((r) => Object.values(r).some((v) => typeof v === "number" && v > 0), {
    message:
      "give at least one keep_* greater than 0 (all zero would mean keep everything; omit retention for that)",
  });

export const configSchema = z
  .object({
    pve: z
      .object({
        /** e.g. https://192.0.2.10:8006 — the node's API, reached from inside the guest. */
        url: z.url({ protocol: /^https$/, error: "must be an https:// URL, e.g. https://192.0.2.10:8006" }),
        /** The token id, `user@realm!tokenid`. */
        token_id: z
          .string()
          .regex(
            /^[^@\s!]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/,
            "must look like agent-101@pve!backup",
          ),
        token_secret_file: z.string().min(1),
        tls: tlsSchema,
        /** Normally discovered from what the token can see; set only to cross-check. */
        vmid: z.number().int().min(100).max(999_999_999).optional(),
        request_timeout_seconds: positiveSeconds.default(30),
      })
      .strict(),
    backup: z
      .object({
        storage: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "must be a PVE storage id"),
        mode: backupMode.default("snapshot"),
        /**
         * When the resume starts at the latest, counted from the start of the quiesce, if the storage
         * snapshot has not appeared by then (the backup then finishes crash-consistent, and says so). Not a
         * bound on the downtime: the stacks are back that long plus the time their start takes (measured
         * 20 s → 23.5 s). The name stays for existing configs; decision in README "How a backup runs".
         */
        max_downtime_seconds: positiveSeconds.default(300),
        /**
         * A snapshot-mode backup of a CT with a volume that cannot be snapshotted (dir/NFS/CIFS raw images,
         * thick LVM), where PVE falls back to suspend mode (agent/backup/snapshot-plan.ts; README "A CT that
         * cannot be snapshotted"): `hold` keeps the stacks down through both of its copies (app-consistent,
         * down for the whole copy, at most max_hold_seconds); `stop` backs up in stop mode; `crash` quiesces
         * nothing (crash-consistent, no downtime); `refuse` fails the backup before any downtime.
         */
        no_snapshot: z
          .object({
            policy: z.enum(["hold", "stop", "crash", "refuse"]).default("hold"),
            /** The downtime deadline of a hold: the stacks come back (crash-consistent) after this long. */
            max_hold_seconds: positiveSeconds.default(3600),
          })
          .strict()
          .prefault({}),
        /**
         * No longer used: the agent always sends vzdump `lockwait=0` (a queued task it stopped could be granted
         * the node lock as the stop landed, and be killed mid-backup). Still accepted, so that a config written
         * for an older agent loads after an upgrade.
         */
        lockwait_minutes: z.number().int().min(0).max(10).optional(),
        /**
         * When the node's vzdump lock is busy: attempts, and the base delay between them (± 50 %; four at the
         * base, then doubling up to 10 × base; decision in agent/backup/busy-retry.ts).
         */
        busy_retry: z
          .object({
            attempts: z.number().int().min(1).max(20).default(10),
            delay_seconds: positiveSeconds.default(60),
          })
          .strict()
          .prefault({}),
        retention: retentionSchema.optional(),
        protected: z.boolean().default(false),
        /**
         * The backup storage's `max-protected-backups` per guest as PVE applies it to this token: 5 when the
         * storage does not set it (a role without Datastore.Allocate). Set it to the storage's value if the
         * PVE admin raised it; with `protected`, a backup is refused before quiescing once this is reached.
         */
        max_protected_backups: z.number().int().min(1).default(5),
      })
      .strict(),
    schedule: z
      .object({
        /**
         * A 5-field cron expression (minute hour day-of-month month day-of-week; no seconds field), in the
         * guest's local time unless `timezone` is set. Checked here with validateCron (agent/lib/cron.ts), the
         * scheduler's own check, so `run` and `config.reload` refuse it (78 / config_invalid) before any
         * runtime is torn down.
         */
        cron: z.string().superRefine(refineWith(validateCron)),
        /** An IANA zone (Europe/Berlin). A misspelt one would only throw when the schedule starts. */
        timezone: z.string().superRefine(refineWith(validateTimezone)).optional(),
        /** A random delay added to each run, so thousands of guests do not hit one node at once. */
        jitter_seconds: z
          .number()
          .int()
          .min(0)
          .max(6 * 3600)
          .default(900),
        /**
         * A run whose time passed while the guest was off: `run` starts one backup soon after start (at most
         * one, however many were missed), `skip` waits for the next slot.
         */
        missed: z.enum(["run", "skip"]).default("run"),
      })
      .strict()
      .optional(),
    hub: z
      .object({
        /** `wss://`, or `ws://` to loopback only: `checkHubUrl`, the check `HubClient.open` makes too. */
        url: z.string().superRefine(
          refineWith((url) => {
            try {
              checkHubUrl(url);
              return undefined;
            } catch (err) {
              return describeError(err);
            }
          }),
        ),
        credential_file: z.string().min(1),
        ca_file: z.string().min(1).optional(),
        outbox: z
          .object({
            max_events: z.number().int().min(100).max(1_000_000).default(50_000),
            max_bytes: z
              .number()
              .int()
              .min(64 * 1024)
              .max(1024 ** 3)
              .default(32 * 1024 ** 2),
          })
          .strict()
          .prefault({}),
        status_interval_seconds: positiveSeconds.default(60),
      })
      .strict()
      .optional(),
    docker: z
      .object({
        socket: z.string().min(1).default("/var/run/docker.sock"),
        /** Quiesce only these compose projects; by default every stack in the guest (they all are in the archive). */
        projects: z.array(z.string().min(1)).min(1).optional(),
      })
      .strict()
      .prefault({}),
    /** Backup health as Prometheus text for node_exporter's textfile collector (docs/metrics.md). */
    metrics: z
      .object({
        textfile: z
          .string()
          .regex(
            /^\/.*\.prom$/,
            "must be an absolute path ending in .prom (the collector reads only *.prom)",
          ),
      })
      .strict()
      .optional(),
    state_dir: z.string().min(1).default("/var/lib/felhom-guest"),
    log_level: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
  })
  .strict();

export type AgentConfig = z.infer<typeof configSchema>;
export type WrittenConfig = z.input<typeof configSchema>;
