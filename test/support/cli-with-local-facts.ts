import { z } from "zod";
import { entry } from "../../agent/cli/cli.ts";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";

/**
 * The CLI as a test runs it when one machine stands for several guests: `node --import tsx
 * test/support/cli-with-local-facts.ts FACTS_JSON ARGS…`, where FACTS_JSON replaces the hostname, MACs or
 * boot time (ms epoch; the uptime follows from it) that the OS reports. It exists only here: the shipped
 * entry (agent/cli/main.ts) always asks the OS.
 */
const overrideSchema = z
  .object({ hostname: z.string(), macs: z.array(z.string()), bootedAtMs: z.number() })
  .partial()
  .strict();
export type LocalFactsOverride = z.infer<typeof overrideSchema>;

const [factsJson, ...argv] = process.argv.slice(2);
const { bootedAtMs, ...rest } = overrideSchema.parse(JSON.parse(factsJson ?? "{}"));
await entry(argv, {
  localFacts: () => ({
    ...readLocalFacts(),
    ...rest,
    ...(bootedAtMs !== undefined ? { uptimeSeconds: (Date.now() - bootedAtMs) / 1000 } : {}),
  }),
});
process.exit();
