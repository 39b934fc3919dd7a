import { randomUUID } from "node:crypto";
import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";

/** The agent's id towards the hub: made once, kept in the state dir. */
export async function agentId(stateDir: string): Promise<string> {
  const path = statePaths(stateDir).agentId;
  const existing = await readJsonFile(path, z.object({ id: z.string().min(1) }));
  if (existing) return existing.id;
  const id = randomUUID();
  await writeJsonDurable(path, { id });
  return id;
}
