import { composeDocuments, isRecord } from "../docker/compose-file.ts";

/**
 * Which of a stack's services belong to compose profiles (pure). Compose labels no profile, and a plain
 * `up -d` after a restore starts only the services without one; a profiled service that ran must be named to
 * come back (compose starts a named service whatever its profiles, without activating them, so its profile
 * siblings that did not run stay down). Services that come in through `include:` are not parsed: a profiled
 * one of those is not named.
 */
export function profiledServices(composeTexts: string[], services: string[]): string[] {
  const wanted = new Set(services);
  const profiled = new Set<string>();
  for (const doc of composeDocuments(composeTexts)) {
    if (!isRecord(doc.services)) continue;
    for (const [name, svc] of Object.entries(doc.services)) {
      if (wanted.has(name) && isRecord(svc) && Array.isArray(svc.profiles) && svc.profiles.length > 0)
        profiled.add(name);
    }
  }
  return [...profiled].sort();
}
