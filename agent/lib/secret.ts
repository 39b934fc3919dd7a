import { readFile, stat } from "node:fs/promises";
import { inspect } from "node:util";
import { AgentError } from "./errors.ts";

const REDACTED = "[redacted]";

/**
 * A secret value that cannot leak by accident: string conversion, JSON, util.inspect (and so pino and
 * console) all print "[redacted]". Only `reveal()` gives the value, and only adapters that put it on the
 * wire (the Authorization header, the hub credential) call it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
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
 * Reads a secret from a file that only its owner may read or write. A file any other user can read is
 * refused before it is opened for reading: the secret may already have leaked, and the operator must know.
 */
export async function readSecretFile(path: string, what: string): Promise<Secret> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (cause) {
    throw new AgentError("secret_file_missing", `cannot read the ${what} file ${path}`, {
      hint: "create it with mode 0600, holding only the secret",
      cause,
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new AgentError(
      "secret_file_mode",
      `the ${what} file ${path} has mode 0${mode.toString(8)}; it must not be readable by group or others`,
      { hint: `run: chmod 600 ${path}` },
    );
  }
  const value = (await readFile(path, "utf8")).trim();
  if (value === "") {
    throw new AgentError("secret_file_empty", `the ${what} file ${path} is empty`, {
      hint: "write the secret into it (one line)",
    });
  }
  return new Secret(value);
}
