import { type IdentityGate, startUp } from "../boot/start-up.ts";
import { CommandError } from "../hub/command-runner.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import type { DaemonEvents } from "./daemon-events.ts";
import type { Runtime } from "./daemon-runtime.ts";

/** How often an agent that could not verify itself at start asks again. */
const IDENTITY_RECHECK_MS = 60_000;

const STARTING: IdentityGate = {
  state: "unverified",
  reason: "the agent is still deciding who this system is (its original, or a restored copy)",
  hint: "try again once the agent has started",
};

/**
 * The start-up decision (agent/boot/start-up.ts: the original, possibly back from its own stop-mode
 * backup, or a restored copy) and what it allows. While it is not made, or the identity is unsure, the
 * gate is closed: every PVE write is refused, the schedule is off, and the decision runs again every
 * minute. A restored copy stays closed until it is enrolled.
 */
export class StartGate {
  #gate: IdentityGate | undefined;
  #recheck: NodeJS.Timeout | undefined;
  #lastRow: string | undefined;
  /** decide() calls in flight: reload and enroll wait for them (two recoveries must not share a journal). */
  #deciding = 0;
  /** Set once the first decision is made; a reload or enroll before that is refused. */
  #started = false;
  #stopping = false;

  constructor(
    private readonly o: {
      log: Logger;
      events: DaemonEvents;
      signal: AbortSignal;
      /** The runtime in use now (a reload or enroll replaces it). */
      current: () => Runtime;
    },
  ) {}

  /** Why PVE writes are refused now; undefined once the identity is verified. */
  get verdict(): IdentityGate | undefined {
    return this.#gate;
  }

  /**
   * The decision for `r`, and what it allows; re-run while the identity is unsure. `catchUp`: run a slot
   * missed while the agent was stopped (not after a reload that moved the slots); `rebuilt`: a reload or
   * enroll replaced the runtime.
   */
  async decide(r: Runtime, opts: { catchUp: boolean; rebuilt?: boolean } = { catchUp: true }): Promise<void> {
    this.#deciding++;
    try {
      await this.#decideNow(r, opts);
    } finally {
      this.#deciding--;
    }
    this.#started = true;
  }

  async #decideNow(r: Runtime, opts: { catchUp: boolean; rebuilt?: boolean }): Promise<void> {
    const { events, log } = this.o;
    clearTimeout(this.#recheck);
    // Until the decision is made (stacks may take minutes to come up) every PVE write is refused: a copy
    // that the live check alone would verify as its original must not run a hub command meanwhile.
    this.#gate ??= STARTING;
    const s = await startUp(r.deps, { configuredProjects: r.config.docker.projects }, this.o.signal);
    // What it did (a restore announced) is reported whatever happens next; a re-check that lands on the
    // same row says nothing new.
    if (s.decision.row !== this.#lastRow) for (const e of s.events) events.emit(e);
    this.#lastRow = s.decision.row;
    // A runtime replaced meanwhile (not expected: reload and enroll wait for decide) was torn down under
    // its recovery; its outcome may be an artefact of that, and the new runtime reports the backup.
    if (r !== this.o.current()) return;
    // recoverAtStart has ended the blackout and entered `report`, as a live run does.
    if (s.recovery?.outcome) r.recordOutcome(s.recovery.outcome, { source: "journal-replay" });
    this.#gate = s.gate;
    // A rebuilt runtime (reload, enroll) runs the slot the old one left waiting out its jitter.
    if (s.verified) await r.scheduler?.start({ catchUp: opts.catchUp, runPending: opts.rebuilt === true });
    else if (s.decision.kind !== "restored-copy" && !this.#stopping) {
      this.#recheck = setTimeout(() => {
        this.decide(this.o.current(), opts).catch((err) =>
          log.error({ err: describeError(err) }, "identity re-check failed"),
        );
      }, IDENTITY_RECHECK_MS);
    }
  }

  /** Reload and enroll before the first decision has run would race it (refuseWhileDeciding: later ones). */
  refuseBeforeStarted(what: string): void {
    if (!this.#started) {
      throw new CommandError("busy", `the agent is still starting; ${what} once it runs`, {
        details: { operation: "start-up", operationId: null },
      });
    }
  }

  refuseWhileDeciding(): void {
    if (this.#deciding > 0) {
      throw new CommandError("busy", "an identity check is running; try again in a moment", {
        details: { operation: "start-up", operationId: null },
      });
    }
  }

  stop(): void {
    this.#stopping = true;
    clearTimeout(this.#recheck);
  }
}
