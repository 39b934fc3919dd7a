import { execFile } from "node:child_process";
import { randomUUID, X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface NodeCertificates {
  caPem: string;
  caFile: string;
  certPem: string;
  certFile: string;
  keyPem: string;
  /** SHA-256 of the leaf, colon-separated upper-case hex, as `pvenode cert info` prints it. */
  fingerprint: string;
}

/**
 * The pve-cluster default chain: a cluster CA like pve-root-ca.pem (CN "Proxmox Virtual Environment",
 * O "PVE Cluster Manager CA", OU = a UUID) signing the node certificate pve-ssl.pem
 * (OU "PVE Cluster Node", SAN 127.0.0.1, ::1, localhost, the node name). RSA 2048 for both to keep start-up fast
 * (PVE's CA is 4096 bits; clients cannot tell the difference for pinning purposes).
 */
export async function createNodeCertificates(dir: string, node: string): Promise<NodeCertificates> {
  const caKey = join(dir, "pve-root-ca.key");
  const caFile = join(dir, "pve-root-ca.pem");
  const key = join(dir, "pve-ssl.key");
  const csr = join(dir, "pve-ssl.csr");
  const certFile = join(dir, "pve-ssl.pem");
  const ext = join(dir, "pve-ssl.ext");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    caFile,
    "-days",
    "3650",
    "-subj",
    `/CN=Proxmox Virtual Environment/OU=${randomUUID()}/O=PVE Cluster Manager CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await run("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    `/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=${node}.local`,
  ]);
  await writeFile(
    ext,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,nonRepudiation,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=IP:127.0.0.1,IP:0:0:0:0:0:0:0:1,DNS:localhost,DNS:${node},DNS:${node}.local`,
    ].join("\n"),
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    caFile,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    certFile,
    "-days",
    "700",
    "-sha256",
    "-extfile",
    ext,
  ]);
  const [caPem, certPem, keyPem] = await Promise.all([
    readFile(caFile, "utf8"),
    readFile(certFile, "utf8"),
    readFile(key, "utf8"),
  ]);
  return {
    caPem,
    caFile,
    certPem,
    certFile,
    keyPem,
    fingerprint: new X509Certificate(certPem).fingerprint256,
  };
}

/** One entry of GET /nodes/{node}/certificates/info (PVE::Certificate::get_certificate_info). */
export function certificateInfo(filename: string, pem: string): Record<string, unknown> {
  const x = new X509Certificate(pem);
  const dn = (s: string) => `/${s.split("\n").join("/")}`;
  const san = x.subjectAltName
    ?.split(", ")
    .map((s) => s.replace(/^(DNS|IP Address):/, ""))
    .map((s) => (s === "0:0:0:0:0:0:0:1" ? "::1" : s));
  return {
    filename,
    fingerprint: x.fingerprint256,
    subject: dn(x.subject),
    issuer: dn(x.issuer),
    notbefore: Math.floor(Date.parse(x.validFrom) / 1000),
    notafter: Math.floor(Date.parse(x.validTo) / 1000),
    "public-key-type": "rsaEncryption",
    "public-key-bits": 2048,
    ...(san ? { san } : {}),
    pem,
  };
}
