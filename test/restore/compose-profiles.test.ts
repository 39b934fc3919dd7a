import { describe, expect, it } from "vitest";
import { profiledServices } from "../../agent/restore/compose-profiles.ts";

const file = `
services:
  web: { image: x }
  debugger: { image: x, profiles: [debug] }
  grafana: { image: x, profiles: ["metrics", "ops"] }
  loadgen: { image: x, profiles: [bench] }
  empty: { image: x, profiles: [] }
`;

describe("the profiled services of a stack", () => {
  it("are those among the given services that belong to a profile", () => {
    expect(profiledServices([file], ["web", "debugger", "grafana", "empty"])).toEqual([
      "debugger",
      "grafana",
    ]);
  });

  it("are none when only default services ran", () => {
    expect(profiledServices([file], ["web"])).toEqual([]);
  });

  it("merge over several -f files, skip an unparsable one, and ignore services no file defines", () => {
    const override = "services:\n  web: { profiles: [frontend] }\n";
    expect(profiledServices([file, "a: [unclosed", override], ["web", "loadgen", "gone"])).toEqual([
      "loadgen",
      "web",
    ]);
  });
});
