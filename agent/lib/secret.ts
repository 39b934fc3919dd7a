import { readFile } from "node:fs/promises";
import { inspect } from "node:util";
import { AgentError } from "./errors.ts";
import { checkFileTrust } from "./file-trust.ts";

const REDACTED = "[redacted]";

/**
 * Every secret value this process has held. Text that did not come from the agent (a hook's output) is
 * passed through redactSecrets before it goes into a message, so that it cannot carry the token or the
 * hub credential to a log or the hub, whatever a container prints. Values shorter than this are not
 * searched for: they would redact ordinary words, and no real token is that short.
 */
const known = new Set<string>();
const MIN_REDACTED_LENGTH = 6;

/** `text` with every secret this process has held replaced by "[redacted]". */
export function redactSecrets(text: string): string {
  let out = text;
  for (const value of known) if (out.includes(value)) out = out.replaceAll(value, REDACTED);
  return out;
}

/**
 * A secret value that cannot leak by accident: string conversion, JSON, util.inspect (and so pino and
 * console) all print "[redacted]". Only `reveal()` gives the value, and only adapters that put it on the
 * wire (the Authorization header, the hub credential) call it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    if (value.length >= MIN_REDACTED_LENGTH) known.add(value);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/**
 * Reads a secret from a file that only root may read or write (agent/lib/file-trust.ts), in a directory
 * only root may write. A file any other user can read, or one that belongs to someone else, is refused
 * before it is opened for reading: the secret may already have leaked, or be theirs, and the operator
 * must know.
 */
export async function readSecretFile(path: string, what: string): Promise<Secret> {
  let trust: Awaited<ReturnType<typeof checkFileTrust>>;
  try {
    trust = await checkFileTrust("secret", path);
  } catch (cause) {
    throw new AgentError("secret_file_missing", `cannot read the ${what} file ${path}`, {
      hint: "create it with mode 0600, owned by root, holding only the secret",
      cause,
    });
  }
  if (trust) {
    throw new AgentError("secret_file_unsafe", `the ${what} file ${path} ${trust.problem}`, {
      hint: `run: ${trust.fix}`,
    });
  }
  const value = (await readFile(path, "utf8")).trim();
  if (value === "") {
    throw new AgentError("secret_file_empty", `the ${what} file ${path} is empty`, {
      hint: "write the secret into it (one line)",
    });
  }
  return new Secret(value);
}
