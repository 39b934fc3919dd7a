import { errorMessage } from "../lib/errors.ts";
import type { StepFailure } from "./errors.ts";
import type { ContainerRef, Engine } from "./executor.ts";
import type { QuiescePlan } from "./plan.ts";

/**
 * After a stop-mode backup's boot: the `none` services were never quiesced, but the guest's shutdown
 * stopped them with everything else, and a container without a restart policy stays `exited`. Start the
 * ones that were running when the plan was made (never one that was not).
 */
export async function startUntouched(
  engine: Pick<Engine, "inspect" | "start">,
  plan: QuiescePlan,
): Promise<{ started: ContainerRef[]; failures: StepFailure[] }> {
  const started: ContainerRef[] = [];
  const failures: StepFailure[] = [];
  await Promise.all(
    plan.untouched.flatMap((svc) =>
      svc.running.map(async (c) => {
        const ref = { project: svc.project, service: svc.service, container: c.name };
        try {
          const { state } = await engine.inspect(c.id);
          if (state === "running" || state === "restarting" || state === "paused") return;
          await engine.start(c.id, c.name);
          started.push(ref);
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          // Removed meanwhile: nothing left to start.
          if (code === "container_not_found") return;
          failures.push({
            ...ref,
            action: "start",
            code: typeof code === "string" ? code : "internal",
            message: errorMessage(err),
          });
        }
      }),
    ),
  );
  return { started, failures };
}
