import { z } from "zod";
import type { AgentConfig } from "../config/schema.ts";
import { requireTrusted } from "../lib/file-trust.ts";
import { readJsonFile } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";

/**
 * Enrollment gives a guest (typically a restored copy) its own token and vmid after installation. The
 * operator's YAML stays as written; `<state_dir>/enrollment.json` names the token, its 0600 secret file
 * and the vmid, and overrides `pve.token_id`, `pve.token_secret_file` and `pve.vmid` wherever the
 * config is loaded. Remove the file (and restart) to fall back to the YAML.
 */
const enrollmentSchema = z.object({
  vmid: z.number().int(),
  tokenId: z.string(),
  tokenSecretFile: z.string(),
  enrolledAt: z.iso.datetime(),
});
export type Enrollment = z.infer<typeof enrollmentSchema>;

/** The config with the enrollment applied (unchanged when the guest was never enrolled). */
export async function applyEnrollment(config: AgentConfig): Promise<AgentConfig> {
  // It overrides the token and its secret file, as agent.yaml would: root's alone, like agent.yaml.
  await requireTrusted("config", statePaths(config.state_dir).enrollment, "enrollment file", "file_unsafe");
  const e = await readJsonFile(statePaths(config.state_dir).enrollment, enrollmentSchema);
  if (!e) return config;
  return {
    ...config,
    pve: { ...config.pve, token_id: e.tokenId, token_secret_file: e.tokenSecretFile, vmid: e.vmid },
  };
}
