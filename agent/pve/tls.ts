import { readFileSync } from "node:fs";
import type { TLSSocket } from "node:tls";
import { AgentError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { PveTlsPinMismatchError } from "./errors.ts";
import { buildConnector, type Connector } from "./undici-core.ts";

/**
 * How the agent trusts pveproxy's certificate. PVE's certificate is signed by its own cluster CA, so the
 * choices are: pin the leaf's SHA-256 (as `pvenode cert info` prints it), trust
 * /etc/pve/pve-root-ca.pem (the host name must then be in the certificate's SAN), or, explicitly and
 * loudly, nothing.
 */
export type PveTls = { fingerprint: string } | { caFile: string } | { insecure: true };

/** `AB:CD:…` upper case; accepts lower case and a fingerprint without colons. */
export function normaliseFingerprint(fingerprint: string): string {
  const hex = fingerprint.replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new AgentError(
      "pve_tls_fingerprint_invalid",
      `tls.fingerprint is not a SHA-256 fingerprint: ${fingerprint}`,
      {
        hint: "copy the fingerprint field of `pvenode cert info` (64 hex digits, colon-separated)",
      },
    );
  }
  return hex.match(/../g)!.join(":");
}

/**
 * The undici connector for a TLS choice. A pinned connection is checked right after the handshake and
 * before undici may write the request, so a mismatch fails closed with nothing sent (not even the
 * Authorization header). Session resumption is off for pins: a resumed session skips the handshake the
 * pin is checked against.
 */
export function pveConnector(tls: PveTls, logger: Logger, connectTimeoutMs: number): Connector {
  if ("fingerprint" in tls) {
    const expected = normaliseFingerprint(tls.fingerprint);
    const base = buildConnector({
      rejectUnauthorized: false,
      maxCachedSessions: 0,
      timeout: connectTimeoutMs,
    });
    return (options, callback) => {
      base(options, (err, socket) => {
        if (err || !socket) {
          callback(err ?? new Error("no socket"), null);
          return;
        }
        const presented = (socket as TLSSocket).getPeerCertificate?.()?.fingerprint256 ?? "none";
        if (presented !== expected) {
          socket.destroy();
          callback(
            new PveTlsPinMismatchError(`${options.hostname}:${options.port}`, expected, presented),
            null,
          );
          return;
        }
        callback(null, socket);
      });
    };
  }
  if ("caFile" in tls) {
    let ca: Buffer;
    try {
      ca = readFileSync(tls.caFile);
    } catch (cause) {
      throw new AgentError("pve_tls_ca_unreadable", `cannot read tls.caFile ${tls.caFile}`, {
        hint: "copy /etc/pve/pve-root-ca.pem from the node into the guest and point tls.caFile at it",
        cause,
      });
    }
    return buildConnector({ ca, rejectUnauthorized: true, timeout: connectTimeoutMs });
  }
  logger.warn(
    { tls: "insecure" },
    "TLS verification of the PVE API is OFF (tls.insecure): anyone on the path can read the token; pin tls.fingerprint instead",
  );
  return buildConnector({ rejectUnauthorized: false, timeout: connectTimeoutMs });
}
