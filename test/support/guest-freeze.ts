import type { ChildProcess } from "node:child_process";
import type { PveSimulatorOptions } from "../pve-sim/simulator.ts";

/**
 * PVE's freeze of the CT (its cgroup freezer) as this machine can have it: the agent's own process, run as
 * a child (test/support/agent-cli.ts), stopped with SIGSTOP where the simulator freezes the guest and
 * continued with SIGCONT where it thaws it. Like the freezer, a stop signal is not seen by the process: its
 * clocks go on, its timers fall due, its sockets fill.
 *
 * Not frozen here: dockerd and the guest's containers, which PVE freezes too. During an app-consistent
 * snapshot the quiesced containers are stopped anyway, and the agent cannot tell a paused container from a
 * slow one; pausing them would only make the test slower.
 */
export class GuestFreezer {
  #child: ChildProcess | undefined;
  #stopped = false;
  readonly freezes: Array<{ frozenAt: number; thawedAt?: number }> = [];

  /**
   * @param whileFrozen runs after the SIGSTOP, before the simulator goes on with the snapshot: a test makes
   * the freeze as long as it needs here.
   */
  constructor(private readonly whileFrozen: () => Promise<unknown> = async () => {}) {}

  /** The process the next freezes stop. */
  target(child: ChildProcess): void {
    this.#child = child;
  }

  hooks(): Required<Pick<PveSimulatorOptions, "onGuestFreeze" | "onGuestThaw">> {
    return {
      onGuestFreeze: async () => {
        if (!this.#alive()) return;
        process.kill(this.#child!.pid!, "SIGSTOP");
        this.#stopped = true;
        this.freezes.push({ frozenAt: Date.now() });
        await this.whileFrozen();
      },
      onGuestThaw: async () => this.release(),
    };
  }

  /** Continues the process if a freeze left it stopped (the simulator thaws in a finally; a test's afterEach too). */
  release(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const last = this.freezes.at(-1);
    if (last) last.thawedAt = Date.now();
    if (this.#alive()) process.kill(this.#child!.pid!, "SIGCONT");
  }

  #alive(): boolean {
    const c = this.#child;
    return c?.pid !== undefined && c.exitCode === null && c.signalCode === null;
  }
}
