/**
 * Strings in code-unit order, for lists the agent sorts (stacks, services, labels): the names are ASCII
 * (compose projects, services, label keys), and the order is the same on every guest. Not
 * `String.prototype.localeCompare`: its first call builds an ICU collator, whose data pages stayed
 * resident in the daemon for its whole life (2.3 MiB of a 68 MiB idle daemon in a probe, README "The daemon's idle
 * resident set").
 */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
