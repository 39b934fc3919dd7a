/**
 * The root of every error the agent raises on purpose. `code` is stable (tests, the hub and exit-code
 * mapping branch on it); `message` says what went wrong; `hint` says what the operator can do about it.
 * Library errors never escape an adapter untranslated.
 */
export class AgentError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }

  /** One line for humans: the problem, then what to do. */
  describe(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/**
 * A message for anything thrown, AgentError or not, without a stack. (Not the protocol's `errorMessage`, which
 * is the schema of an `error` frame.)
 */
export function describeError(err: unknown): string {
  if (err instanceof AgentError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
