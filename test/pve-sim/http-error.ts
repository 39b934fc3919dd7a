/**
 * PVE::Exception as the HTTP server turns it into a response: `status`, the reason phrase (first line of the
 * message), and for parameter errors the per-key `errors` map.
 */
export class PveHttpError extends Error {
  readonly status: number;
  readonly errors: Record<string, string> | undefined;

  constructor(status: number, message: string, errors?: Record<string, string>) {
    super(message);
    this.status = status;
    this.errors = errors;
  }
}

/** raise_param_exc: 400 "Parameter verification failed." with the per-key messages. */
export function paramError(errors: Record<string, string>): PveHttpError {
  return new PveHttpError(400, "Parameter verification failed.", errors);
}

/** raise_perm_exc: 403 with the path and privilege (or `a|b` for check_any) in the reason. */
export function permError(what?: string): PveHttpError {
  return new PveHttpError(403, what ? `Permission check failed (${what})` : "Permission check failed");
}

/** A plain `die` inside a handler: 500 with the text as the reason. */
export function dieError(message: string): PveHttpError {
  return new PveHttpError(500, message);
}
