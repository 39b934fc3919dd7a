import { coverageText, type MountCoverage } from "./archive-coverage.ts";
import { parsePolicy } from "./labels.ts";
import type { StackFacts } from "./stack-facts.ts";

/**
 * Advice about the discovered stacks, for `felhom-guest stacks`, the doctor and the backup report.
 * Pure: facts in, structured warnings out; nothing here blocks a backup.
 */

export type StackWarningCode =
  | "large_named_volume"
  | "no_restart_policy"
  | "stop_grace_short"
  | "crash_consistent_database"
  | "depends_on_unknown"
  | "image_label_ignored"
  | "outside_archive";

export interface StackWarning {
  code: StackWarningCode;
  project: string;
  service: string | undefined;
  message: string;
}

export interface WarningFacts {
  /** Named volume sizes in bytes (DockerEngine.volumeSizes); omit to skip the volume check. */
  volumeSizes?: Map<string, number>;
  /** Last observed stop duration of a service (StackRegistry.observedStopMs). */
  observedStopMs?: (project: string, service: string) => number | undefined;
  /** Whether each mount's data is in the archive (archive-coverage.ts); omit when the CT config is unknown. */
  coverage?: readonly MountCoverage[];
  /** @default 1 GiB */
  largeVolumeBytes?: number;
  /** A stop that took at least this share of the grace period is close to being SIGKILLed. @default 0.8 */
  graceShareLimit?: number;
}

const DATABASE_IMAGE =
  /(^|\/)(postgres|postgresql|postgis|timescaledb|mysql|mariadb|mongo|mongodb)([:@-]|$)/i;
const DOCKER_DEFAULT_GRACE_S = 10;

export function stackWarnings(stacks: StackFacts[], facts: WarningFacts = {}): StackWarning[] {
  const largeBytes = facts.largeVolumeBytes ?? 1024 ** 3;
  const graceShare = facts.graceShareLimit ?? 0.8;
  const out: StackWarning[] = [];
  for (const stack of stacks) {
    const warn = (code: StackWarningCode, service: string | undefined, message: string) =>
      out.push({ code, project: stack.project, service, message });
    const multi = stack.services.length > 1;
    if (stack.dependsOnSource === "unknown" && multi) {
      warn(
        "depends_on_unknown",
        undefined,
        `the compose files of ${stack.project} (${stack.configFiles.join(", ") || "none recorded"}) could not be read, so services are quiesced without dependency order`,
      );
    }
    const seenVolumes = new Set<string>();
    for (const svc of stack.services) {
      const c = svc.containers[0];
      if (!c) continue;
      const { policy } = parsePolicy(c.name, c.labels);
      const running = svc.containers.some((x) => x.state === "running");

      const fromImage = Object.entries(c.labelsFromImage ?? {});
      if (fromImage.length > 0) {
        warn(
          "image_label_ignored",
          svc.name,
          `${stack.project}/${svc.name}: ${fromImage.map(([k, v]) => `${k}=${v}`).join(", ")} ${fromImage.length > 1 ? "come" : "comes"} from its image ${c.image}, not from the compose file, and ${fromImage.length > 1 ? "are" : "is"} ignored (the service is quiesced with "${policy.strategy}"); to use ${fromImage.length > 1 ? "them" : "it"}, set ${fromImage.length > 1 ? "them" : "it"} in the service's labels`,
        );
      }

      if (running && c.restartPolicy === "no") {
        warn(
          "no_restart_policy",
          svc.name,
          `${stack.project}/${svc.name} has no restart policy: after a reboot or a stop-mode backup it stays exited until something starts it (set restart: unless-stopped)`,
        );
      }

      if (policy.strategy === "stop") {
        const observed = facts.observedStopMs?.(stack.project, svc.name);
        const graceS = c.stopTimeoutS ?? DOCKER_DEFAULT_GRACE_S;
        if (observed !== undefined && observed >= graceS * 1000 * graceShare) {
          warn(
            "stop_grace_short",
            svc.name,
            `${stack.project}/${svc.name} took ${(observed / 1000).toFixed(1)} s to stop last time, against a grace period of ${graceS} s: a slower shutdown gets SIGKILLed (raise stop_grace_period)`,
          );
        }
      }

      if (DATABASE_IMAGE.test(c.image) && (policy.strategy === "none" || policy.strategy === "pause")) {
        warn(
          "crash_consistent_database",
          svc.name,
          `${stack.project}/${svc.name} runs a database image (${c.image}) with strategy "${policy.strategy}": its copy is only crash-consistent and the restored database will run crash recovery; use "stop" or an "exec" dump`,
        );
      }

      if (facts.volumeSizes) {
        for (const m of c.mounts) {
          if (m.type !== "volume" || !m.name || seenVolumes.has(m.name)) continue;
          seenVolumes.add(m.name);
          const size = facts.volumeSizes.get(m.name);
          if (size !== undefined && size >= largeBytes) {
            warn(
              "large_named_volume",
              svc.name,
              `named volume ${m.name} (${(size / 1024 ** 3).toFixed(1)} GiB, mounted by ${c.name}) lives in the guest's rootfs and is inside every backup; to keep bulk data out, bind-mount a PVE mount point created with backup=0 instead`,
            );
          }
        }
      }
    }
  }
  for (const c of facts.coverage ?? []) {
    if (!c.inArchive)
      out.push({ code: "outside_archive", project: c.project, service: c.service, message: coverageText(c) });
  }
  return out;
}
