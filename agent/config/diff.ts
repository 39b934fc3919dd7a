/** The dotted keys whose value differs between two configs (arrays compared whole). Pure. */
export function changedKeys(before: unknown, after: unknown, prefix = ""): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => changedKeys(before[k], after[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix || "(root)"];
}

/** Keys a running daemon cannot take over without a restart: its hub link and where its state lives. */
export function needsRestart(keys: string[]): string[] {
  return keys.filter((k) => k === "state_dir" || k === "hub" || k.startsWith("hub."));
}
