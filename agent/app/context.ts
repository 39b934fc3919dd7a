import type { AgentConfig } from "../config/schema.ts";
import { DockerEngine } from "../docker/docker-engine.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { requireTrusted } from "../lib/file-trust.ts";
import { readSecretFile } from "../lib/secret.ts";
import type { Logger } from "../log/logger.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import { PveClient } from "../pve/client.ts";
import type { RetryPolicy } from "../pve/retry.ts";
import type { PveTls } from "../pve/tls.ts";

/** The adapters one process needs, built once from the config and passed explicitly (no service locator). */
export interface AgentContext {
  config: AgentConfig;
  log: Logger;
  pve: PveClient;
  engine: DockerEngine;
  operationDeps(emit: OperationDeps["emit"]): OperationDeps;
  close(): Promise<void>;
}

function tlsOf(config: AgentConfig): PveTls {
  const t = config.pve.tls;
  if (t.fingerprint) return { fingerprint: t.fingerprint };
  if (t.ca_file) return { caFile: t.ca_file };
  return { insecure: true };
}

const ONE_ATTEMPT: RetryPolicy = { maxAttempts: 1, wait: async () => {} };

export async function createContext(
  config: AgentConfig,
  log: Logger,
  /** readLocalFacts in the shipped CLI; `main`'s caller chooses (agent/cli/cli.ts). */
  localFacts: () => LocalFacts,
  /** A quick look instead of the configured timeouts and the retries (`felhom-guest stacks`). */
  quick?: { timeoutMs: number },
): Promise<AgentContext> {
  const secret = await readSecretFile(config.pve.token_secret_file, "PVE token secret");
  // The CA decides which server gets the token: whoever could write it could stand in for PVE.
  if (config.pve.tls.ca_file)
    await requireTrusted("config", config.pve.tls.ca_file, "pve.tls.ca_file", "file_unsafe");
  const timeoutMs = quick?.timeoutMs ?? config.pve.request_timeout_seconds * 1000;
  const pve = new PveClient(
    {
      baseUrl: config.pve.url,
      tokenId: config.pve.token_id,
      secret,
      tls: tlsOf(config),
      timeouts: { headersMs: timeoutMs, bodyMs: timeoutMs, ...(quick ? { connectMs: quick.timeoutMs } : {}) },
      ...(quick ? { retry: ONE_ATTEMPT } : {}),
    },
    log,
  );
  const engine = new DockerEngine({ socketPath: config.docker.socket });
  return {
    config,
    log,
    pve,
    engine,
    operationDeps: (emit) => ({
      pve,
      engine,
      stateDir: config.state_dir,
      backup: config.backup,
      configuredVmid: config.pve.vmid,
      projects: config.docker.projects,
      localFacts,
      emit,
      log,
    }),
    close: () => pve.close(),
  };
}
