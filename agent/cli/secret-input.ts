import type { Readable, Writable } from "node:stream";
import { AgentError } from "../lib/errors.ts";
import { Secret } from "../lib/secret.ts";

/** What readSecretInput reads from: stdin in the CLI; a TTY only when `isTTY` and `setRawMode` exist. */
type Input = Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

const CTRL_C = "\u0003";
const CTRL_D = "\u0004";
const BACKSPACE = ["\u007f", "\b"];

/**
 * A secret typed at a terminal, without echo, or piped in on stdin (`< file`): never an argument and never
 * a here-string, both of which land in the shell's history. On a terminal a prompt goes to `prompt`
 * (stderr, so stdout stays for the command's output) and the line discipline's echo is off while the
 * secret is typed (raw mode); Ctrl-C aborts.
 */
export async function readSecretInput(what: string, input: Input, prompt: Writable): Promise<Secret> {
  const value =
    input.isTTY && input.setRawMode ? await fromTerminal(what, input, prompt) : await fromPipe(input);
  if (value === "")
    throw new AgentError("secret_file_empty", `no ${what} given`, {
      hint: "type it at the prompt, or give it on stdin from a file: … < FILE",
    });
  return new Secret(value);
}

async function fromPipe(input: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8").trim();
}

function fromTerminal(what: string, input: Input, prompt: Writable): Promise<string> {
  // Echo off before the prompt shows: nothing typed after it is echoed.
  input.setRawMode!(true);
  prompt.write(`${what} (not shown): `);
  return new Promise((resolve, reject) => {
    let typed = "";
    const done = (err?: Error) => {
      input.off("data", onData);
      input.setRawMode!(false);
      input.pause();
      prompt.write("\n");
      if (err) reject(err);
      else resolve(typed.trim());
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || ch === CTRL_D) return done();
        if (ch === CTRL_C) return done(new AgentError("aborted", `${what}: aborted, nothing written`));
        if (BACKSPACE.includes(ch)) typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on("data", onData);
    input.resume();
  });
}
