import { describe, expect, it } from "vitest";
import {
  parseLxcNet,
  parsePropertyString,
  prunePolicyToPropertyString,
} from "../../agent/pve/property-string.ts";

describe("pve property strings", () => {
  it("parses net0 with hwaddr upper-cased", () => {
    const net = parseLxcNet("name=eth0,bridge=vmbr0,hwaddr=bc:24:11:0a:0b:0c,ip=dhcp,type=veth");
    expect(net).toMatchObject({
      name: "eth0",
      bridge: "vmbr0",
      hwaddr: "BC:24:11:0A:0B:0C",
      ip: "dhcp",
      type: "veth",
    });
    expect(net.raw.hwaddr).toBe("bc:24:11:0a:0b:0c");
  });

  it("parses a default-key item and quoted values with commas", () => {
    expect(parsePropertyString("local-lvm:vm-100-disk-0,size=8G", "volume")).toEqual({
      volume: "local-lvm:vm-100-disk-0",
      size: "8G",
    });
    expect(parsePropertyString('a="x,\\"y",b=2')).toEqual({ a: 'x,"y', b: "2" });
  });

  it("turns a prune policy into PVE's property string in PVE's key order", () => {
    expect(prunePolicyToPropertyString({ "keep-daily": 7, "keep-last": 3 })).toBe("keep-last=3,keep-daily=7");
    expect(prunePolicyToPropertyString({ "keep-all": 1 })).toBe("keep-all=1");
  });

  it("refuses policies PVE would refuse or misread", () => {
    expect(() => prunePolicyToPropertyString({})).toThrow(/sets no keep/);
    expect(() => prunePolicyToPropertyString({ "keep-last": -1 })).toThrow(/non-negative/);
    expect(() => prunePolicyToPropertyString({ "keep-last": 1.5 })).toThrow(/non-negative/);
    expect(() => prunePolicyToPropertyString({ "keep-all": 1, "keep-last": 2 })).toThrow(
      /cannot be combined/,
    );
    expect(() => prunePolicyToPropertyString({ "keep-forever": 1 } as never)).toThrow(
      /unknown retention keys/,
    );
  });
});
