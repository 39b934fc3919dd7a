import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_PATH } from "../config/paths.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { readLocalFacts } from "../identity/local-facts.ts";
import { AgentError } from "../lib/errors.ts";
import { AGENT_VERSION } from "../version.ts";
import { type Command, commands } from "./commands/index.ts";
import { ExitCode, exitCodeFor, UsageError } from "./exit-codes.ts";

// Only light modules are imported up front: a command's code, the config loader (yaml, zod, the scheduler)
// and the logger (pino) are loaded when a command runs and asks for them (commands/command.ts).

const USAGE = `felhom-guest ${AGENT_VERSION}: app-consistent self-backups of this Proxmox guest

usage: felhom-guest [--config PATH] <command> [options]

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(44)} ${c.summary}`)
  .join("\n")}

global options:
  --config PATH   the config file (default ${DEFAULT_CONFIG_PATH})
  -h, --help      this text; \`felhom-guest <command> --help\` for one command
  --version       the agent's version

exit codes: 0 ok, 1 operation failed, 2 usage, 69 a required service is unavailable,
            75 busy (a backup is running, the node's vzdump lock is held): try later,
            77 not run as root, 78 configuration error,
            79 (run) another daemon already runs for this state dir
`;

const HELP = { help: { type: "boolean", short: "h" } } as const;

function commandHelp(name: string, c: Command): string {
  return `usage: felhom-guest [--config PATH] ${name} ${c.args}\n\n${c.summary}\n${c.help ? `\n${c.help}\n` : ""}`;
}

/** Index of the command word: the first argument that is neither an option nor --config's value. */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--config") i++;
    else if (!argv[i]!.startsWith("-")) return i;
  }
  return -1;
}

/**
 * What the CLI takes from the system rather than from its arguments. The shipped entry (main.ts) passes
 * the real thing; a test-only entry may stand in for this guest (several "guests" on one machine), so the
 * installed binary has no switch, variable or file that could replace the facts the identity check
 * stands on.
 */
export interface CliSystem {
  localFacts: () => LocalFacts;
}

const REAL_SYSTEM: CliSystem = { localFacts: readLocalFacts };

export async function main(argv: string[], system: CliSystem = REAL_SYSTEM): Promise<number> {
  const first = commandIndex(argv);
  const global = parseArgs({
    args: first === -1 ? argv : argv.slice(0, first),
    options: { config: { type: "string" }, version: { type: "boolean" }, ...HELP },
    strict: true,
  }).values;
  if (global.help) {
    process.stdout.write(USAGE);
    return ExitCode.ok;
  }
  const name = global.version ? "version" : first === -1 ? undefined : argv[first];
  if (!name) {
    // A usage error: the text goes to stderr, where it cannot be mistaken for a command's output.
    process.stderr.write(USAGE);
    return ExitCode.usage;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command "${name}"`);
  const parsed = parseArgs({
    args: global.version || first === -1 ? [] : argv.slice(first + 1),
    options: { ...command.options, ...HELP },
    allowPositionals: true,
    strict: true,
  });
  if (parsed.values.help) {
    process.stdout.write(commandHelp(name, command));
    return ExitCode.ok;
  }
  if (command.asRoot && process.getuid?.() !== 0) {
    throw new AgentError(
      "not_root",
      `${name} must run as root: it reads the config, secrets and state only root may read`,
      { hint: "run it as root, e.g. with sudo" },
    );
  }
  const configPath = global.config ?? DEFAULT_CONFIG_PATH;
  // zod without generated parsers (lib/zod-jitless.ts), set before a command's code parses anything;
  // `version` parses nothing and does not load zod at all.
  if (name !== "version") await import("../lib/zod-jitless.ts");
  const run = await command.load();
  return run({
    values: parsed.values as Record<string, string | boolean | undefined>,
    positionals: parsed.positionals,
    configPath,
    loadConfig: async () => {
      const [{ loadConfig }, { checkStateDir }, { applyEnrollment }] = await Promise.all([
        import("../config/load.ts"),
        import("../config/state-dir.ts"),
        import("../identity/enrollment-record.ts"),
      ]);
      const config = await loadConfig(configPath);
      await checkStateDir(config, configPath);
      // A re-enrolled copy's own token and vmid (state_dir/enrollment.json) override the installed YAML.
      return applyEnrollment(config);
    },
    // Commands other than `run` keep stdout for their own output; their log lines go to stderr.
    logger: async (level) =>
      (await import("../log/logger.ts")).createLogger({ level, destination: process.stderr }),
    localFacts: system.localFacts,
  });
}

export async function entry(argv = process.argv.slice(2), system = REAL_SYSTEM): Promise<void> {
  try {
    process.exitCode = await main(argv, system);
  } catch (err) {
    const code = exitCodeFor(err);
    if (err instanceof AgentError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(
        `felhom-guest: ${err instanceof AgentError ? err.describe() : (err as Error).message}\n`,
      );
      process.exitCode = err instanceof AgentError ? code : ExitCode.usage;
    } else {
      process.stderr.write(
        `felhom-guest: unexpected error (a bug; please report it):\n${(err as Error).stack ?? err}\n`,
      );
      process.exitCode = ExitCode.failed;
    }
  }
}
