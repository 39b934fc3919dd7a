import { describe, expect, it } from "vitest";
import { featureSchema } from "../../agent/pve/schemas.ts";

describe("the feature check's answer (API2/LXC.pm vm_feature)", () => {
  it("takes any perl false as no: has_feature's 0, and the empty string or null another version might send", () => {
    for (const no of [0, "", "0", null, false])
      expect(featureSchema.parse({ hasFeature: no })).toEqual({ hasFeature: false });
    for (const yes of [1, "1", true])
      expect(featureSchema.parse({ hasFeature: yes })).toEqual({ hasFeature: true });
  });
});
