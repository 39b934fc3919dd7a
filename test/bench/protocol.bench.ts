/**
 * What validation costs on the hub's hot path: parsing one backup.progress event frame through the
 * protocol's guarded, validating parser, against a bare JSON.parse of the same frame in the same run.
 */
import { parseAgentToHub, stringifyMessage } from "@felhom/protocol";
import type { BenchReport } from "./report.ts";

export default async function (report: BenchReport): Promise<void> {
  const frame = stringifyMessage({
    type: "event",
    seq: 41,
    at: new Date().toISOString(),
    event: {
      kind: "backup.progress",
      backupId: "bk-20261127T073005Z-a1b2c3",
      phase: "follow",
      bytes: 123_456_789,
      line: "INFO: Total bytes written: 878131200 (838MiB, 82MiB/s)",
    },
  });
  const n = 50_000;
  const time = (fn: () => unknown) => {
    for (let i = 0; i < 2_000; i++) fn(); // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - t0) / 1e3 / n;
  };
  const bare = time(() => JSON.parse(frame));
  const validated = time(() => {
    const r = parseAgentToHub(frame);
    if (!r.ok) throw new Error(r.error.message);
  });
  report({ metric: "parse backup.progress frame", value: validated, unit: "µs", baseline: bare });
}
