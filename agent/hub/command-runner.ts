import {
  COMMAND_ERRORS,
  type Command,
  type CommandErrorCode,
  type CommandMessage,
  type CommandName,
  type CommandOf,
  type CommandResultData,
  type ResultMessage,
  stringifyMessage,
} from "@felhom/protocol";
import { AgentError, describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { commandFailureOf } from "./command-errors.ts";
import type { CommandStore } from "./command-store.ts";

export interface CommandContext {
  /** The hub's command id (idempotency key; also the trigger of a backup). */
  id: string;
  /** Aborted when the hub link stops (agent shutdown). */
  signal: AbortSignal;
}

/** What the daemon wires each command to: the same services the CLI uses. */
export type CommandHandlers = {
  [N in CommandName]?: (params: CommandOf<N>["params"], ctx: CommandContext) => Promise<CommandResultData<N>>;
};

/**
 * Thrown by a handler for an expected failure the hub branches on (`already_running`, `busy`, …). Any
 * other error becomes `internal` with its message.
 */
export class CommandError extends AgentError {
  readonly commandCode: CommandErrorCode;
  readonly details: Record<string, string | number | boolean | null> | undefined;

  constructor(
    code: CommandErrorCode,
    message: string,
    options: { details?: Record<string, string | number | boolean | null>; cause?: unknown } = {},
  ) {
    super(`command_${code}`, message, { cause: options.cause });
    this.commandCode = code;
    this.details = options.details;
  }
}

export function failedResult(
  id: string,
  name: string | undefined,
  code: CommandErrorCode,
  message: string,
  details?: Record<string, string | number | boolean | null>,
): ResultMessage {
  return {
    type: "result",
    id,
    ok: false,
    ...(name === undefined ? {} : { name }),
    error: {
      code,
      message: message.length <= 2_000 ? message : `${message.slice(0, 1_997)}...`,
      retryable: COMMAND_ERRORS[code].retryable,
      ...(details === undefined ? {} : { details }),
    },
  };
}

/**
 * The result stored for a command that was running when the agent died. Its outcome is unknown (a backup
 * may have started and may even have finished), so it is a failure that must not be retried blindly:
 * the hub asks for status and decides, with a new command id if it wants to try again.
 */
export function interruptedResult(id: string, name: string, startedAt: string): ResultMessage {
  return failedResult(
    id,
    name,
    "internal",
    `the agent stopped while this command was running (started ${startedAt}); its outcome is unknown — check status, then send a new command id to try again`,
    { interrupted: true },
  );
}

/** Runs hub commands at most once per id, through the durable store. Never throws. */
export class CommandRunner {
  readonly #store: CommandStore<ResultMessage>;
  readonly #handlers: CommandHandlers;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<unknown>>();
  #refusing = false;

  constructor(store: CommandStore<ResultMessage>, handlers: CommandHandlers, log: Logger) {
    this.#store = store;
    this.#handlers = handlers;
    this.#log = log;
  }

  /**
   * Answers a validated command. `send` is called with the "still running" answer at once when the id is
   * already executing, and with the final result when there is one (now for a repeat, later for a new id).
   */
  async handle(msg: CommandMessage, send: (result: ResultMessage) => void): Promise<void> {
    const { id, command } = msg;
    if (this.#refusing || this.#abort.signal.aborted) {
      // Not recorded: the id was not run, so the hub may send it again to the agent's next run.
      send(
        failedResult(
          id,
          command.name,
          "shutting_down",
          "the agent is stopping; this command was not run: send it again once the agent is back",
        ),
      );
      return;
    }
    let begin: Awaited<ReturnType<CommandStore<ResultMessage>["begin"]>>;
    try {
      begin = await this.#store.begin(id, command.name);
    } catch (err) {
      // Without a durable "running" record a repeat could run it twice: refuse instead.
      this.#log.error(
        { err: describeError(err), commandId: id },
        "cannot record the hub command; not running it",
      );
      send(
        failedResult(
          id,
          command.name,
          "internal",
          `cannot record the command durably: ${describeError(err)}`,
        ),
      );
      return;
    }
    if (begin.state === "done") {
      this.#log.info(
        { commandId: id, command: command.name },
        "repeated hub command id: sending the stored result",
      );
      send(begin.result);
      return;
    }
    if (begin.state === "running") {
      send(
        failedResult(
          id,
          command.name,
          "in_progress",
          `command ${id} (${begin.name}) is still running since ${begin.startedAt}`,
        ),
      );
      return;
    }
    const run = this.#execute(id, command);
    this.#running.add(run);
    try {
      const result = await run;
      await this.#store.finish(id, result).catch((err: unknown) => {
        this.#log.error({ err: describeError(err), commandId: id }, "cannot store the hub command's result");
      });
      send(result);
    } finally {
      this.#running.delete(run);
    }
  }

  /** From now on every new command is answered `shutting_down`; running ones go on. */
  refuseNew(): void {
    this.#refusing = true;
  }

  /** Aborts the handlers' signal and waits (at most `graceMs`) for running commands to settle. */
  async stop(graceMs: number): Promise<void> {
    this.#abort.abort();
    if (this.#running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async #execute(id: string, command: Command): Promise<ResultMessage> {
    const handler = this.#handlers[command.name] as
      | ((params: unknown, ctx: CommandContext) => Promise<unknown>)
      | undefined;
    if (!handler) {
      return failedResult(
        id,
        command.name,
        "unknown_command",
        `this agent does not handle "${command.name}"`,
        {
          name: command.name,
        },
      );
    }
    this.#log.info({ commandId: id, command: command.name }, "running hub command");
    try {
      const data = await handler(command.params, { id, signal: this.#abort.signal });
      const result = { type: "result", id, ok: true, name: command.name, data } as ResultMessage;
      // Validate here, not at send time: a result the hub would reject must not be stored as the answer.
      stringifyMessage(result);
      return result;
    } catch (err) {
      if (err instanceof CommandError) {
        return failedResult(id, command.name, err.commandCode, err.message, err.details);
      }
      const failure = commandFailureOf(err);
      this.#log[failure.code === "internal" ? "error" : "warn"](
        { err: failure.message, code: failure.code, commandId: id, command: command.name },
        "hub command failed",
      );
      return failedResult(id, command.name, failure.code, failure.message, failure.details);
    }
  }
}
