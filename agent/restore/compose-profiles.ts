import { parse } from "yaml";

/**
 * The compose profiles a stack ran with (pure). Compose records no label for them, but a service that
 * belongs to profiles only has a container when one of them was active (or it was named on the command
 * line, which activates them the same way). So the profiles of the services the agent saw running are
 * the ones `up -d` must enable after a restore, and a service of any other profile stays down, as it was.
 * Services that come in through `include:` are not parsed: their profiles are not recovered.
 */
export function profilesOfServices(composeTexts: string[], services: string[]): string[] {
  const wanted = new Set(services);
  const profiles = new Set<string>();
  for (const text of composeTexts) {
    let doc: unknown;
    try {
      doc = parse(text, { merge: true });
    } catch {
      continue;
    }
    if (!isRecord(doc) || !isRecord(doc.services)) continue;
    for (const [name, svc] of Object.entries(doc.services)) {
      if (!wanted.has(name) || !isRecord(svc) || !Array.isArray(svc.profiles)) continue;
      for (const p of svc.profiles) if (typeof p === "string" && p !== "") profiles.add(p);
    }
  }
  return [...profiles].sort();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
