import { describe, expect, it } from "vitest";
import {
  confirmCandidate,
  hostnameMatches,
  pickCandidate,
  UPTIME_TOLERANCE_S,
} from "../../agent/identity/decide-identity.ts";
import { guestGone } from "../../agent/identity/identity-service.ts";
import { PveHttpError, PvePermissionError, PveServerError } from "../../agent/pve/errors.ts";

const g101 = { vmid: 101, node: "pve1", type: "lxc" as const };
const g102 = { vmid: 102, node: "pve2", type: "lxc" as const };
const local = { hostname: "web", macs: ["bc:24:11:00:00:01"] };

describe("identity decision", () => {
  it("takes the only container the token sees", () => {
    expect(pickCandidate([g101, { vmid: 900, node: "pve1", type: "qemu" }], undefined)).toEqual({
      ok: true,
      guest: g101,
    });
  });

  it("is unverified when the token sees no container, and says re-enroll", () => {
    const r = pickCandidate([], undefined);
    expect(r).toMatchObject({ ok: false, identity: { state: "unverified", hint: /enroll/ } });
  });

  it("is unverified when the token sees several containers, unless the config names one", () => {
    expect(pickCandidate([g101, g102], undefined)).toMatchObject({
      ok: false,
      identity: { reason: /sees 2 containers/ },
    });
    expect(pickCandidate([g101, g102], 102)).toEqual({ ok: true, guest: g102 });
    expect(pickCandidate([g101], 102)).toMatchObject({
      ok: false,
      identity: { reason: /configured guest 102/ },
    });
  });

  it("verifies a candidate whose hwaddr and hostname are ours", () => {
    expect(confirmCandidate(g101, { hostname: "web", hwaddrs: ["bc:24:11:00:00:01"] }, local)).toEqual({
      state: "verified",
      vmid: 101,
      node: "pve1",
      hostname: "web",
    });
  });

  it("refuses a candidate whose MAC is not ours, naming both", () => {
    const r = confirmCandidate(g101, { hostname: "web", hwaddrs: ["bc:24:11:00:00:99"] }, local);
    expect(r).toMatchObject({
      state: "unverified",
      vmid: 101,
      reason: /bc:24:11:00:00:99.*bc:24:11:00:00:01/,
    });
  });

  it("refuses a candidate with another hostname", () => {
    const r = confirmCandidate(g101, { hostname: "db", hwaddrs: ["bc:24:11:00:00:01"] }, local);
    expect(r).toMatchObject({ state: "unverified", reason: /"web" differs from CT 101's "db"/ });
  });

  it("verifies a candidate configured with a dotted name, which PVE writes to the guest's /etc/hostname cut at the first dot", () => {
    const config = { hostname: "web.example.com", hwaddrs: ["bc:24:11:00:00:01"] };
    expect(confirmCandidate(g101, config, local)).toEqual({
      state: "verified",
      vmid: 101,
      node: "pve1",
      hostname: "web",
    });
    // An admin may have set the full name inside the guest as well.
    expect(confirmCandidate(g101, config, { ...local, hostname: "web.example.com" })).toMatchObject({
      state: "verified",
    });
  });

  it("still refuses a dotted config name whose first label is not this guest's hostname", () => {
    const r = confirmCandidate(g101, { hostname: "web2.example.com", hwaddrs: ["bc:24:11:00:00:01"] }, local);
    expect(r).toMatchObject({ state: "unverified", signal: "hostname-mismatch" });
  });

  it("matches hostnames exactly or by the config name's first label, and in no looser way", () => {
    expect(hostnameMatches("web1", "web1")).toBe(true);
    expect(hostnameMatches("web1.example.com", "web1")).toBe(true);
    expect(hostnameMatches("web1.example.com", "web1.example.com")).toBe(true);
    // The domain is not visible inside the guest, so any domain matches the same first label (by design).
    expect(hostnameMatches("web1.a.com", "web1")).toBe(true);
    expect(hostnameMatches("web1", "web2.example.com")).toBe(false);
    expect(hostnameMatches("web2.example.com", "web1")).toBe(false);
    expect(hostnameMatches("web1", "web1.example.com")).toBe(false);
    expect(hostnameMatches("web1.example.com", "web1.example")).toBe(false);
    expect(hostnameMatches("web1.example.com", "web")).toBe(false);
    expect(hostnameMatches("Web1.example.com", "web1")).toBe(false);
    expect(hostnameMatches(".example.com", "")).toBe(false);
  });
});

describe("identity decision: the candidate's run state against this system's", () => {
  const config = { hostname: "web", hwaddrs: ["bc:24:11:00:00:01"] };
  const here = { ...local, uptimeSeconds: 30 };

  it("verifies when PVE's uptime of the candidate is about this system's", () => {
    expect(confirmCandidate(g101, config, here, { running: true, uptimeSeconds: 31 })).toMatchObject({
      state: "verified",
    });
  });

  it("refuses when the candidate has been up much longer than this system (a copy keeps MAC and hostname)", () => {
    const r = confirmCandidate(g101, config, here, {
      running: true,
      uptimeSeconds: 30 + UPTIME_TOLERANCE_S + 1,
    });
    expect(r).toMatchObject({ state: "unverified", signal: "uptime", hint: /enroll/ });
  });

  it("refuses when PVE reports the candidate stopped while this system runs", () => {
    expect(confirmCandidate(g101, config, here, { running: false, uptimeSeconds: 0 })).toMatchObject({
      state: "unverified",
      signal: "guest-stopped",
    });
  });

  it("does not judge uptime when this system's own uptime is unknown", () => {
    expect(confirmCandidate(g101, config, local, { running: true, uptimeSeconds: 99_999 })).toMatchObject({
      state: "verified",
    });
  });
});

describe("a guest gone between two calls", () => {
  it("counts 403, 404 and PVE's missing config file as gone, and nothing else", () => {
    const req = "GET /nodes/pve1/lxc/101/config";
    expect(guestGone(new PvePermissionError(req, "Permission check failed (/vms/101, VM.Audit)"))).toBe(true);
    expect(guestGone(new PveHttpError(req, 404, "Not Found"))).toBe(true);
    expect(
      guestGone(new PveServerError(req, 500, "Configuration file 'nodes/pve1/lxc/101.conf' does not exist")),
    ).toBe(true);
    expect(guestGone(new PveServerError(req, 500, "got timeout"))).toBe(false);
    expect(guestGone(new Error("x"))).toBe(false);
  });
});
