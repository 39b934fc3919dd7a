/**
 * PVE's own check of vzdump's `notes-template` (pve-manager:PVE/VZDump.pm `$verify_notes_template`, plus
 * the schema's maxLength 1024), run locally so a bad template fails before any service is quiesced.
 * Returns the problem in PVE's words, or undefined when the template is valid.
 */
export function notesTemplateProblem(template: string): string | undefined {
  if (template.length > 1024) return `longer than 1024 characters (${template.length})`;
  if (template.includes("\n")) return "contains a line feed";
  const problems: string[] = [];
  for (const m of template.matchAll(/\\(.)/g)) {
    if (m[1] !== "n" && m[1] !== "\\") problems.push(`escape sequence '\\${m[1]}' at char ${m.index}`);
  }
  for (const m of template.matchAll(/\{\{([^\s{}]+)\}\}/g)) {
    if (!/^(cluster|guestname|node|vmid)$/.test(m[1]!)) {
      problems.push(`variable '${m[1]}' at char ${m.index + 2}`);
    }
  }
  return problems.length > 0 ? `found unknown: ${problems.join(", ")}` : undefined;
}
