import { describe, expect, it } from "vitest";
import { notesTemplateProblem } from "../../agent/pve/notes-template.ts";

describe("pve notes-template validation", () => {
  it("accepts the four variables and the two escapes", () => {
    expect(
      notesTemplateProblem("felhom {{guestname}} on {{node}}/{{cluster}} vmid {{vmid}}\\nid=b-1 \\\\"),
    ).toBeUndefined();
  });

  it("rejects a raw line feed", () => {
    expect(notesTemplateProblem("a\nb")).toBe("contains a line feed");
  });

  it("rejects unknown escapes and variables, naming each like PVE", () => {
    expect(notesTemplateProblem("x\\t {{hostname}}")).toBe(
      "found unknown: escape sequence '\\t' at char 1, variable 'hostname' at char 6",
    );
  });

  it("rejects templates longer than 1024 characters", () => {
    expect(notesTemplateProblem("a".repeat(1025))).toMatch(/longer than 1024/);
    expect(notesTemplateProblem("a".repeat(1024))).toBeUndefined();
  });
});
