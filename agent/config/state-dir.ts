import { stat } from "node:fs/promises";
import { ConfigError } from "./load.ts";
import type { AgentConfig } from "./schema.ts";

/**
 * `state_dir` must exist and be a directory before any command uses it. The agent does not create it: the
 * package does (postinst, 0700), so a missing one is a mistyped key or a guest restored without it, and
 * creating an empty one would hide the journal and identity that belong in it. A config error (78) names
 * the key, instead of failing later deep in a module as a bug, with systemd restarting it every 5 seconds.
 */
export async function checkStateDir(config: AgentConfig, file: string): Promise<void> {
  const dir = config.state_dir;
  let problem: string;
  try {
    if ((await stat(dir)).isDirectory()) return;
    problem = `${dir} is not a directory`;
  } catch (err) {
    problem =
      (err as NodeJS.ErrnoException).code === "ENOENT"
        ? `${dir} does not exist: create it (install -d -m 0700 ${dir}) or point state_dir at the agent's state directory`
        : `${dir} cannot be read: ${(err as Error).message}`;
  }
  throw new ConfigError(file, [{ key: "state_dir", problem }]);
}
