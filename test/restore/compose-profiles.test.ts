import { describe, expect, it } from "vitest";
import { profilesOfServices } from "../../agent/restore/compose-profiles.ts";

const file = `
services:
  web: { image: x }
  debugger: { image: x, profiles: [debug] }
  grafana: { image: x, profiles: ["metrics", "ops"] }
  loadgen: { image: x, profiles: [bench] }
`;

describe("the profiles a stack ran with", () => {
  it("are those of the services that had containers, and no others", () => {
    expect(profilesOfServices([file], ["web", "debugger", "grafana"])).toEqual(["debug", "metrics", "ops"]);
  });

  it("are none for a stack without profiled services", () => {
    expect(profilesOfServices([file], ["web"])).toEqual([]);
  });

  it("merge over several -f files and survive an unparsable one", () => {
    const override = "services:\n  web: { profiles: [frontend] }\n";
    expect(profilesOfServices([file, "::: not yaml", override], ["web", "loadgen"])).toEqual([
      "bench",
      "frontend",
    ]);
  });
});
