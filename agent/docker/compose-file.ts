import { parse } from "yaml";

/**
 * Compose files as YAML (pure): what discovery, the restore's order and its profiled services read from them.
 * Compose files lean on `<<: *anchor` merge keys, which YAML 1.2 leaves off by default.
 */

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** One file's document; throws on YAML that does not parse. */
export function parseComposeFile(text: string): unknown {
  return parse(text, { merge: true }) as unknown;
}

/** The documents that parse to a mapping; a file that does not is skipped, so the others still count. */
export function composeDocuments(texts: string[]): Record<string, unknown>[] {
  return texts.flatMap((text) => {
    try {
      const doc = parseComposeFile(text);
      return isRecord(doc) ? [doc] : [];
    } catch {
      return [];
    }
  });
}
