import { readFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import { requireTrusted } from "../lib/file-trust.ts";
import { DEFAULT_CONFIG_PATH, EXAMPLE_CONFIG_PATH } from "./paths.ts";
import { type AgentConfig, configSchema } from "./schema.ts";

/** A config problem: the dotted key and what is wrong with it. */
export interface ConfigIssue {
  key: string;
  problem: string;
}

export class ConfigError extends AgentError {
  readonly issues: ConfigIssue[];

  constructor(file: string, issues: ConfigIssue[]) {
    super("config_invalid", `${file}: ${issues.map((i) => `${i.key}: ${i.problem}`).join("; ")}`, {
      hint: `fix the named keys; ${EXAMPLE_CONFIG_PATH} shows every key`,
    });
    this.issues = issues;
  }
}

function issuesOf(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((i) => {
    const key = i.path.join(".") || "(top level)";
    if (i.code === "unrecognized_keys") {
      const prefix = i.path.length ? `${i.path.join(".")}.` : "";
      return { key: i.keys.map((k) => prefix + k).join(", "), problem: "unknown key" };
    }
    return { key, problem: i.message };
  });
}

/** Pure: YAML text → a validated config, or every problem at once. */
export function parseConfig(text: string, file = "config"): AgentConfig {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        key: `line ${e.linePos?.[0]?.line ?? "?"}`,
        problem: e.message.split("\n")[0]!,
      })),
    );
  }
  const parsed = configSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) throw new ConfigError(file, issuesOf(parsed.error));
  return parsed.data;
}

/**
 * Reads the config file, refusing one that anybody but root can write (or that sits in a directory
 * anybody else can write): it names the PVE URL and the TLS trust the token is sent to.
 */
export async function loadConfig(path = DEFAULT_CONFIG_PATH): Promise<AgentConfig> {
  await requireTrusted("config", path, "config file", "config_file_unsafe");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new ConfigError(path, [{ key: "(file)", problem: `cannot be read: ${(cause as Error).message}` }]);
  }
  return parseConfig(text, path);
}
