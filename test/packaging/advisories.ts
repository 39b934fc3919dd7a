/**
 * The advisories the shipped production tree is checked against (test/packaging/deb.test.ts), by package:
 * a version in [introduced, fixed) is vulnerable. `npm audit` needs the registry's advisory endpoint, which
 * CI cannot reach, so the list is kept here by hand (GitHub advisory database ids): the advisories known
 * when it was written for the packages of the production tree and for ssh2, which it shipped before. Add
 * one whenever a scanner flags a package; the test then proves the shipped tree is clear of it.
 */
export interface Advisory {
  id: string;
  package: string;
  introduced: string;
  fixed: string;
}

export const ADVISORIES: Advisory[] = [
  // tar-fs (dockerode's build/archive API; the agent never calls it, scanners flag it all the same)
  { id: "CVE-2024-12905 / GHSA-pq67-2wwv-3xjx", package: "tar-fs", introduced: "2.0.0", fixed: "2.1.2" },
  { id: "CVE-2024-12905 / GHSA-pq67-2wwv-3xjx", package: "tar-fs", introduced: "3.0.0", fixed: "3.0.7" },
  { id: "CVE-2024-12905 / GHSA-pq67-2wwv-3xjx", package: "tar-fs", introduced: "0.0.0", fixed: "1.16.4" },
  { id: "CVE-2025-48387 / GHSA-8cj5-5rvv-wf4v", package: "tar-fs", introduced: "2.0.0", fixed: "2.1.3" },
  { id: "CVE-2025-48387 / GHSA-8cj5-5rvv-wf4v", package: "tar-fs", introduced: "3.0.0", fixed: "3.0.9" },
  { id: "CVE-2025-48387 / GHSA-8cj5-5rvv-wf4v", package: "tar-fs", introduced: "0.0.0", fixed: "1.16.5" },
  { id: "CVE-2025-59343 / GHSA-vj76-c3g6-qr5v", package: "tar-fs", introduced: "2.0.0", fixed: "2.1.4" },
  { id: "CVE-2025-59343 / GHSA-vj76-c3g6-qr5v", package: "tar-fs", introduced: "3.0.0", fixed: "3.1.1" },
  { id: "CVE-2025-59343 / GHSA-vj76-c3g6-qr5v", package: "tar-fs", introduced: "0.0.0", fixed: "1.16.6" },
  // ssh2 (no longer shipped: package.json overrides it with packaging/no-ssh2)
  { id: "CVE-2020-26301 / GHSA-652h-xwhf-q4h6", package: "ssh2", introduced: "0.0.0", fixed: "1.4.0" },
  // the rest of the production tree
  { id: "CVE-2024-37890 / GHSA-3h5v-q93c-6h6q", package: "ws", introduced: "8.0.0", fixed: "8.17.1" },
  { id: "CVE-2025-22150 / GHSA-c76h-2ccp-4975", package: "undici", introduced: "7.0.0", fixed: "7.2.3" },
  { id: "CVE-2025-47279 / GHSA-cxrh-j4jr-qwg3", package: "undici", introduced: "7.0.0", fixed: "7.5.0" },
  { id: "CVE-2023-2251 / GHSA-f9xv-q969-pqx4", package: "yaml", introduced: "2.0.0-5", fixed: "2.2.2" },
  { id: "CVE-2023-4316 / GHSA-m95q-7qp3-xv42", package: "zod", introduced: "0.0.0", fixed: "3.22.3" },
  { id: "CVE-2017-16137 / GHSA-gxpj-cx7g-858c", package: "debug", introduced: "4.0.0", fixed: "4.3.1" },
  // debug 4.4.2 was the hijacked release of September 2025 (malware); 4.4.3 replaced it
  { id: "GHSA-4x49-vf9v-38px (malware)", package: "debug", introduced: "4.4.2", fixed: "4.4.3" },
  { id: "CVE-2017-20162 / GHSA-w9mr-4mfr-499f", package: "ms", introduced: "0.0.0", fixed: "2.0.0" },
  { id: "CVE-2020-8244 / GHSA-pp7h-53gx-mx7r", package: "bl", introduced: "4.0.0", fixed: "4.0.3" },
];

/** Packages that must not ship: never used by the agent, yet loaded (ssh2) or native (cpu-features, nan). */
export const NEVER_SHIPPED = [
  "ssh2",
  "cpu-features",
  "nan",
  "asn1",
  "bcrypt-pbkdf",
  "tweetnacl",
  "buildcheck",
];

function parse(v: string): number[] {
  return v
    .split("-")[0]!
    .split(".")
    .map((n) => Number(n));
}

/** a < b, numerically by major.minor.patch (pre-release tags are ignored: none is shipped). */
export function versionBelow(a: string, b: string): boolean {
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  }
  return false;
}

export function affected(pkg: { name: string; version: string }): Advisory[] {
  return ADVISORIES.filter(
    (a) =>
      a.package === pkg.name &&
      !versionBelow(pkg.version, a.introduced) &&
      versionBelow(pkg.version, a.fixed),
  );
}
