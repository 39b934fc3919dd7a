import { readdir, readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";

const agentDir = new URL("../../agent/", import.meta.url).pathname;

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(path)));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

describe("the local facts the identity check stands on", () => {
  afterEach(() => {
    delete process.env.FELHOM_TEST_LOCAL_FACTS;
  });

  it("come from the OS alone: the old test variable, even malformed, changes nothing and crashes nothing", () => {
    process.env.FELHOM_TEST_LOCAL_FACTS = JSON.stringify({
      hostname: "someone-else",
      macs: ["02:00:00:00:00:01"],
    });
    expect(readLocalFacts().hostname).toBe(hostname());
    expect(readLocalFacts().macs).not.toContain("02:00:00:00:00:01");
    process.env.FELHOM_TEST_LOCAL_FACTS = "{not json";
    expect(() => readLocalFacts()).not.toThrow();
  });

  it("have no test switch anywhere in the shipped code (agent/)", async () => {
    const offenders: string[] = [];
    for (const file of await sources(agentDir)) {
      if (/FELHOM_TEST/.test(await readFile(file, "utf8"))) offenders.push(file);
    }
    expect(offenders).toEqual([]);
  });
});
