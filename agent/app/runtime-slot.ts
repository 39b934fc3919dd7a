import type { CommandResultData } from "@felhom/protocol";
import { changedKeys, needsRestart } from "../config/diff.ts";
import { ConfigError } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import { type CommandContext, CommandError, type CommandHandlers } from "../hub/command-runner.ts";
import { enrollGuest } from "../identity/enrollment.ts";
import { applyEnrollment } from "../identity/enrollment-record.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import { Secret } from "../lib/secret.ts";
import { createContext } from "./context.ts";
import {
  type BackgroundOperations,
  buildRuntime,
  type Runtime,
  type RuntimeParts,
  settleRuntime,
} from "./daemon-runtime.ts";
import { refuseWhileBusy } from "./refuse-while-busy.ts";
import type { StartGate } from "./start-gate.ts";

/**
 * The daemon's runtime and the two commands that replace it: `enroll` (a new token) and `config.reload`
 * (SIGHUP too). The new runtime is built before the old one is torn down: if building fails (a token file
 * gone, a mode too loose) the running one stays, with its schedule, and the caller hears config_invalid.
 */
export class RuntimeSlot {
  #current: Runtime | undefined;

  constructor(
    private readonly o: {
      installed: AgentConfig;
      /** Reads the config file again (with the enrollment applied). */
      readConfig: () => Promise<AgentConfig>;
      parts: RuntimeParts;
      background: BackgroundOperations;
      gate: StartGate;
    },
  ) {}

  get current(): Runtime {
    if (!this.#current) throw new AgentError("internal", "the daemon's runtime is not built yet");
    return this.#current;
  }

  async start(): Promise<Runtime> {
    this.#current = await buildRuntime(await applyEnrollment(this.o.installed), this.o.parts);
    return this.#current;
  }

  /** Handlers that always reach the current runtime's (enrollment replaces it while the hub link stays). */
  handlers(): CommandHandlers {
    const names = Object.keys(this.current.handlers) as (keyof CommandHandlers)[];
    const out: Record<string, (params: never, c: CommandContext) => Promise<unknown>> = {};
    for (const name of names) {
      out[name] = (params, c) => {
        const handler = this.current.handlers[name] as
          | ((p: never, c: CommandContext) => Promise<unknown>)
          | undefined;
        if (!handler) throw new AgentError("internal", `no handler for ${name}`);
        return handler(params, c);
      };
    }
    return out as CommandHandlers;
  }

  async settle(): Promise<void> {
    if (this.#current) await settleRuntime(this.#current, this.o.background);
  }

  async #swap(config: AgentConfig, opts: { catchUp: boolean }): Promise<void> {
    let next: Runtime;
    try {
      next = await buildRuntime(config, this.o.parts);
    } catch (err) {
      throw new CommandError(
        "config_invalid",
        `the new configuration cannot be used: ${describeError(err)}; the running one stays`.slice(0, 2000),
        { details: { key: "(runtime)" } },
      );
    }
    await this.settle();
    this.#current = next;
    await this.o.gate.decide(next, { ...opts, rebuilt: true });
  }

  /** Hub `enroll`: verify the new token, persist it, then switch every adapter over to it. */
  async enroll(params: {
    vmid: number;
    tokenId: string;
    tokenSecret: string;
  }): Promise<CommandResultData<"enroll">> {
    const { gate, installed, parts } = this.o;
    // Before the start-up decision has run, its verdict would land after (and undo) this enrollment.
    gate.refuseBeforeStarted("enroll");
    gate.refuseWhileDeciding();
    await refuseWhileBusy(installed.state_dir, "enroll");
    let identity: Awaited<ReturnType<typeof enrollGuest>>;
    try {
      identity = await enrollGuest({
        config: installed,
        vmid: params.vmid,
        tokenId: params.tokenId,
        secret: new Secret(params.tokenSecret),
        local: this.current.deps.localFacts(),
        log: parts.log,
        connect: (config) => createContext(config, parts.log, parts.localFacts),
      });
    } catch (err) {
      const message = describeError(err).slice(0, 2000);
      const code = err instanceof AgentError ? err.code : "internal";
      if (code === "pve_authentication_failed") throw new CommandError("pve_auth", message);
      if (code === "pve_network_error" || code === "pve_timeout" || code === "pve_server_error")
        throw new CommandError("pve_unreachable", message);
      // The new token does not verify as this guest: nothing was written, the old identity stays.
      throw new CommandError("identity_unverified", message, {
        details: { identityState: gate.verdict?.state ?? "verified" },
      });
    }
    await this.#swap(await applyEnrollment(installed), { catchUp: true });
    return {
      vmid: identity.vmid,
      node: identity.node,
      identityState: gate.verdict?.state ?? "verified",
    };
  }

  /**
   * config.reload and SIGHUP: read the file again; an invalid file changes nothing (config_invalid, the
   * running config stays). The hub link and the state dir need a restart; everything else (PVE, backup,
   * schedule, Docker) is taken over by rebuilding the runtime, between backups.
   */
  async reload(): Promise<CommandResultData<"config.reload">> {
    const { gate, installed, parts } = this.o;
    gate.refuseBeforeStarted("reload");
    let next: AgentConfig;
    try {
      next = await this.o.readConfig();
    } catch (err) {
      const key = err instanceof ConfigError ? (err.issues[0]?.key ?? "(file)") : "(file)";
      throw new CommandError("config_invalid", describeError(err).slice(0, 2000), { details: { key } });
    }
    const changed = changedKeys(this.current.config, next);
    const restart = needsRestart(changed);
    if (restart.length > 0) {
      throw new CommandError(
        "config_invalid",
        `${restart.join(", ")} changed: that needs a restart (systemctl restart felhom-guest); nothing was applied`,
        { details: { key: restart[0]! } },
      );
    }
    if (changed.length === 0) return { changedKeys: [] };
    gate.refuseWhileDeciding();
    await refuseWhileBusy(installed.state_dir, "reload");
    // A changed cron must not make the new schedule's earlier slots look missed; an unchanged one catches
    // up as usual (slots passed while the identity was unverified, the seconds of the swap).
    const slotsMoved = changed.some((k) => ["schedule", "schedule.cron", "schedule.timezone"].includes(k));
    await this.#swap(next, { catchUp: !slotsMoved });
    parts.log.level = next.log_level;
    parts.log.info({ changedKeys: changed }, "configuration reloaded");
    return { changedKeys: changed.slice(0, 256) };
  }
}
