import { type Logger, pino } from "pino";

export type { Logger };

/**
 * JSON lines to stdout (journald keeps them). Secrets never reach the logger as plain strings: they are
 * `Secret` objects that serialise as "[redacted]"; the redact paths below are a second belt for headers
 * that an adapter might log whole.
 */
export function createLogger(
  options: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      name: options.name ?? "felhom-guest",
      level: options.level ?? process.env.FELHOM_LOG_LEVEL ?? "info",
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "*.headers.authorization",
          "secret",
          "*.secret",
          "token",
          "*.token",
        ],
        censor: "[redacted]",
      },
      base: { pid: process.pid },
    },
    options.destination,
  );
}

/** A logger that drops everything, for tests of pure logic and for tools that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
