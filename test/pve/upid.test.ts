import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatUpid, parseUpid, type Upid } from "../../agent/pve/upid.ts";

describe("pve UPID parser", () => {
  it("parses a token-started vzdump UPID and splits the token user like the task API does", () => {
    expect(parseUpid("UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:100:agent@pve!backup:")).toEqual({
      node: "pve1",
      pid: 0x0012ab34,
      pstart: 0x0456cd78,
      starttime: 0x66f1a2b3,
      type: "vzdump",
      id: "100",
      user: "agent@pve",
      tokenId: "backup",
    });
  });

  it("accepts a 9-digit pstart, an empty id and a plain user", () => {
    const u = parseUpid("UPID:node-2:00000001:1000000AB:66F1A2B3:vzdump::root@pam:");
    expect(u.pstart).toBe(0x1000000ab);
    expect(u.id).toBe("");
    expect(u.user).toBe("root@pam");
    expect(u.tokenId).toBeUndefined();
  });

  it.each([
    ["no trailing colon", "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:100:agent@pve!backup"],
    ["a 7-digit pid", "UPID:pve1:012AB34:0456CD78:66F1A2B3:vzdump:100:root@pam:"],
    ["a 10-digit pstart", "UPID:pve1:0012AB34:0456CD7800:66F1A2B3:vzdump:100:root@pam:"],
    ["a node ending in a dash", "UPID:pve1-:0012AB34:0456CD78:66F1A2B3:vzdump:100:root@pam:"],
    ["a slash in the type", "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vz/dump:100:root@pam:"],
    ["an empty user", "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:100::"],
    ["a space in the id", "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:1 0:root@pam:"],
  ])("rejects a UPID with %s", (_what, text) => {
    expect(() => parseUpid(text)).toThrow(expect.objectContaining({ code: "pve_upid_invalid" }));
  });

  const segment = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,12}$/);
  const realm = fc.stringMatching(/^[A-Za-z][A-Za-z0-9._-]{1,8}$/);
  const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,8}$/);
  const tokenUser = fc
    .tuple(name, realm, realm)
    .map(([u, r, token]) => ({ user: `${u}@${r}`, tokenId: token }));
  const plainUser = fc.oneof(
    fc.tuple(name, realm).map(([u, r]) => ({ user: `${u}@${r}` })),
    segment.map((user) => ({ user })),
  );
  const upidArb: fc.Arbitrary<Upid> = fc
    .record({
      node: fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?$/),
      pid: fc.integer({ min: 0, max: 0xffffffff }),
      pstart: fc.integer({ min: 0, max: 0xfffffffff }),
      starttime: fc.integer({ min: 0, max: 0xffffffff }),
      type: segment,
      id: fc.oneof(fc.constant(""), segment),
      owner: fc.oneof(tokenUser, plainUser),
    })
    .map(({ owner, ...rest }) => ({ ...rest, ...owner }));

  it("round-trips format then parse for any valid task id (property)", () => {
    fc.assert(
      fc.property(upidArb, (upid) => {
        const text = formatUpid(upid);
        expect(parseUpid(text)).toEqual(upid);
        expect(formatUpid(parseUpid(text))).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
});
