import { AgentError } from "../lib/errors.ts";
import { type PermissionFailure, parsePermissionFailure, permissionHint } from "./permission-error.ts";

/**
 * Every failure of a PVE call is one of these. Messages name the request (`GET /nodes/pve1/...`) and what
 * PVE said; they never hold request headers, so the token secret cannot reach them. `retryable` tells the
 * transport whether a GET may be repeated.
 */
export abstract class PveError extends AgentError {
  abstract readonly retryable: boolean;
}

/** A configuration mistake found before any connection is made. */
export class PveConfigError extends PveError {
  readonly retryable = false;
  constructor(message: string) {
    super("pve_config_invalid", message, { hint: "fix the pve section of the configuration" });
  }
}

export class PveAuthenticationError extends PveError {
  readonly retryable = false;
  constructor(request: string, reason: string) {
    super("pve_authentication_failed", `${request}: PVE refused the API token (401 ${reason})`, {
      hint: "check tokenId and the secret file against `pveum user token list`; the token may be deleted or expired, or the user disabled (PVE answers every 401 only after 3 s, so the agent does not retry)",
    });
  }
}

export class PvePermissionError extends PveError {
  readonly retryable = false;
  readonly failure: PermissionFailure | undefined;
  constructor(request: string, reason: string) {
    const failure = parsePermissionFailure(reason);
    super("pve_permission_denied", `${request}: ${reason}`, { hint: permissionHint(failure) });
    this.failure = failure;
  }
}

export class PveParameterError extends PveError {
  readonly retryable = false;
  readonly errors: Record<string, string>;
  constructor(request: string, reason: string, errors: Record<string, string>) {
    const detail = Object.entries(errors)
      .map(([k, v]) => `${k}: ${v.trim()}`)
      .join("; ");
    super("pve_parameter_invalid", `${request}: ${reason}${detail ? ` (${detail})` : ""}`, {
      hint: "PVE rejected a parameter the agent sent; check the named setting in the configuration, otherwise report it as a bug with this message",
    });
    this.errors = errors;
  }
}

export class PveNotImplementedError extends PveError {
  readonly retryable = false;
  constructor(request: string, reason: string) {
    super("pve_not_implemented", `${request}: ${reason}`, {
      hint: "this PVE version does not offer the endpoint; check `pveversion` on the node against the supported versions",
    });
  }
}

export class PveServerError extends PveError {
  readonly retryable = true;
  readonly status: number;
  constructor(request: string, status: number, reason: string) {
    super("pve_server_error", `${request}: PVE failed with ${status} ${reason}`, {
      hint: "see `journalctl -u pveproxy -u pvedaemon` on the node",
    });
    this.status = status;
  }
}

/** Any other HTTP status PVE should not send for these calls. */
export class PveHttpError extends PveError {
  readonly retryable = false;
  readonly status: number;
  constructor(request: string, status: number, reason: string) {
    super("pve_http_error", `${request}: unexpected HTTP ${status} ${reason}`, {
      hint: "check that baseUrl points at pveproxy (port 8006) and not at another service",
    });
    this.status = status;
  }
}

/**
 * The request did not complete. `mayHaveReachedServer` is false only when no byte of it can have been
 * delivered (connection refused, DNS failure, connect timeout): only then may a POST be sent again.
 */
export class PveNetworkError extends PveError {
  readonly retryable = true;
  readonly mayHaveReachedServer: boolean;
  constructor(
    request: string,
    what: string,
    mayHaveReachedServer: boolean,
    cause: unknown,
    code = "pve_network_error",
  ) {
    super(code, `${request}: ${what}`, {
      hint: "check that the node's port 8006 is reachable from the guest (firewall, ALLOW_FROM in /etc/default/pveproxy)",
      cause,
    });
    this.mayHaveReachedServer = mayHaveReachedServer;
  }
}

export class PveTimeoutError extends PveNetworkError {
  constructor(request: string, what: string, mayHaveReachedServer: boolean, cause: unknown) {
    super(request, what, mayHaveReachedServer, cause, "pve_timeout");
  }
}

export class PveTlsPinMismatchError extends PveError {
  readonly retryable = false;
  readonly expected: string;
  readonly presented: string;
  constructor(host: string, expected: string, presented: string) {
    super(
      "pve_tls_pin_mismatch",
      `the certificate of ${host} does not match the pinned fingerprint: expected ${expected}, presented ${presented}; nothing was sent`,
      {
        hint: "if the node certificate was renewed, set tls.fingerprint to the value `pvenode cert info` prints; otherwise something is intercepting the connection",
      },
    );
    this.expected = expected;
    this.presented = presented;
  }
}

export class PveTlsError extends PveError {
  readonly retryable = false;
  constructor(host: string, what: string, cause: unknown) {
    super("pve_tls_untrusted", `the certificate of ${host} is not trusted: ${what}`, {
      hint: "with tls.caFile, use /etc/pve/pve-root-ca.pem and an address listed in the certificate's SAN (`pvenode cert info`); or pin tls.fingerprint",
      cause,
    });
  }
}

/** PVE answered 2xx with a body the agent cannot use. */
export class PveResponseError extends PveError {
  readonly retryable = false;
  constructor(request: string, what: string) {
    super("pve_bad_response", `${request}: unexpected response: ${what}`, {
      hint: "the PVE version may not be supported; report it with this message",
    });
  }
}

export class PveAbortedError extends PveError {
  readonly retryable = false;
  constructor(request: string) {
    super("pve_aborted", `${request}: cancelled`, {
      hint: "the agent cancelled the call itself (shutdown, or an operation deadline); PVE may still act on a request it received",
    });
  }
}

/** The follower's own deadline passed; the task itself goes on on the node. */
export class PveTaskDeadlineError extends PveError {
  readonly retryable = false;
  constructor(upid: string, deadlineMs: number) {
    super("pve_task_follow_deadline", `task ${upid} did not end within ${Math.round(deadlineMs / 1000)} s`, {
      hint: "the task keeps running on the node; check it in the GUI (Tasks) or follow it again",
    });
  }
}

/**
 * A task-starting POST failed after it may have reached PVE, and no task of ours appeared in the node's
 * task list. Sending it again could start a second backup; the caller must not.
 */
export class PveTaskStartUnknownError extends PveError {
  readonly retryable = false;
  constructor(what: string, cause: unknown) {
    super(
      "pve_task_start_unknown",
      `unknown whether ${what} started: the request failed after it may have reached PVE, and no such task of this token is listed`,
      {
        hint: "do not start it again by hand yet; check the node's task list (GUI: Tasks) and wait for any running task to finish",
        cause,
      },
    );
  }
}
