import { AgentError } from "../lib/errors.ts";

/** The exit codes of product-brief §8 (sysexits-style where one exists). */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  /** EX_UNAVAILABLE: a required service (the Docker engine, for the sandbox) is not there. */
  unavailable: 69,
  /** EX_TEMPFAIL: busy (a backup is already running, the node's vzdump lock is held), try later. */
  busy: 75,
  /** EX_NOPERM: a command that reads root-only files, run by another user. */
  noPermission: 77,
  /** EX_CONFIG */
  config: 78,
  /**
   * Another daemon already runs for this state dir (agent/app/daemon-lock.ts): the second `run` exits
   * at once, touching nothing. Outside the sysexits range, so it is not taken for anything else. The unit
   * does not restart on it either (RestartPreventExitStatus): every restart would meet the same lock.
   */
  daemonRunning: 79,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class UsageError extends AgentError {
  constructor(message: string) {
    super("usage", message, { hint: "see `felhom-guest --help`" });
  }
}

/** Codes of AgentErrors that mean "busy, try again later" rather than "failed". */
const BUSY_CODES = new Set(["backup_running", "vzdump_lock_busy", "guest_locked"]);

/**
 * Codes of AgentErrors that only an edit of the config, or of a file it names, can fix (besides the
 * `secret_file_*` codes): 78 keeps systemd from restarting the daemon into the same
 * error every few seconds (packaging/felhom-guest.service, RestartPreventExitStatus=78 79).
 */
export const CONFIG_CODES: ReadonlySet<string> = new Set([
  /** The config file belongs to someone else or others can write it (agent/lib/file-trust.ts). */
  "config_file_unsafe",
  /** So does a CA file (pve.tls.ca_file, hub.ca_file) or `<state_dir>/enrollment.json`. */
  "file_unsafe",
  /**
   * `ConfigError`: the file and its schema, `schedule.cron` and `schedule.timezone` included (the schema runs
   * the scheduler's own checks, agent/lib/cron.ts; the Scheduler repeats them), and `state_dir`.
   */
  "config_invalid",
  /** `hub.url` (the schema already refuses these; `HubClient.open` checks again). */
  "hub_url_invalid",
  "hub_url_insecure",
  /** `hub.ca_file`. */
  "hub_ca_unreadable",
  /** `pve.url`, `pve.token_id` (`PveConfigError`). */
  "pve_config_invalid",
  /** `pve.tls.ca_file`, `pve.tls.fingerprint`. */
  "pve_tls_ca_unreadable",
  "pve_tls_fingerprint_invalid",
  /** `backup.retention`. */
  "pve_prune_policy_invalid",
]);

export function exitCodeFor(err: unknown): ExitCodeValue {
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof AgentError) {
    if (err.code === "not_root") return ExitCode.noPermission;
    if (BUSY_CODES.has(err.code)) return ExitCode.busy;
    if (err.code === "docker_unreachable") return ExitCode.unavailable;
    if (err.code === "daemon_running") return ExitCode.daemonRunning;
    if (err.code.startsWith("secret_file") || CONFIG_CODES.has(err.code)) return ExitCode.config;
  }
  return ExitCode.failed;
}
