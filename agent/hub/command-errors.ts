import type { CommandErrorCode } from "@felhom/protocol";
import { AgentError, describeError } from "../lib/errors.ts";

type Details = Record<string, string | number | boolean | null>;

/** A failed command's answer, before it becomes a `result`: one of the protocol's closed set of codes. */
export interface CommandFailure {
  code: CommandErrorCode;
  message: string;
  details?: Details;
}

/**
 * Agent error codes (stable, set by the adapters) the hub can act on, by the protocol's command error code
 * they mean. Everything else a handler throws is `internal`: a failure the hub cannot branch on is a bug
 * report, not a decision.
 */
const BY_AGENT_CODE: Record<string, CommandErrorCode> = {
  // agent/pve/errors.ts
  pve_authentication_failed: "pve_auth",
  pve_permission_denied: "pve_permission",
  pve_network_error: "pve_unreachable",
  pve_timeout: "pve_unreachable",
  pve_server_error: "pve_unreachable",
  pve_tls_untrusted: "pve_unreachable",
  pve_tls_pin_mismatch: "pve_unreachable",
  // agent/docker/errors.ts
  docker_unreachable: "docker_unreachable",
  // agent/identity, agent/restore: no PVE write for an unverified guest or a restored copy
  identity_unverified: "identity_unverified",
  // agent/snapshot: a name PVE would refuse, caught before anything is quiesced
  invalid_params: "invalid_params",
  config_invalid: "config_invalid",
};

/** What the hub hears for an error a command handler threw (CommandError or not). */
export function commandFailureOf(err: unknown): CommandFailure {
  const message = describeError(err);
  if (!(err instanceof AgentError)) return { code: "internal", message };
  const code = BY_AGENT_CODE[err.code];
  if (!code) return { code: "internal", message };
  if (code === "pve_permission") {
    // PVE names the ACL path and the privilege it checked ("Permission check failed (/vms/101, VM.Backup)").
    const failure = (err as { failure?: { path?: string; privileges: string[] } }).failure;
    return {
      code,
      message,
      details: { path: failure?.path ?? null, privilege: failure?.privileges.join("|") || null },
    };
  }
  return { code, message };
}
