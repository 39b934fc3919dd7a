import { isIP } from "node:net";
import { AgentError } from "../lib/errors.ts";

/**
 * Checks the hub URL before anything is dialled: `wss://` anywhere, `ws://` only to this machine (a
 * sandbox or a local test hub), because the credential travels in the upgrade request. The config schema
 * runs it on `hub.url` (messages name no key: the config error adds it), `HubClient.open` again.
 */
export function checkHubUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AgentError("hub_url_invalid", `${JSON.stringify(raw)} is not a URL`, {
      hint: "set hub.url to wss://<hub host>/<path>",
    });
  }
  if (url.protocol === "wss:") return url;
  if (url.protocol === "ws:") {
    if (isLoopback(url.hostname)) return url;
    throw new AgentError(
      "hub_url_insecure",
      `${url.origin} is plain ws:// to a host other than this machine; the credential would travel unencrypted`,
      { hint: "use wss:// (ws:// is allowed only to 127.0.0.0/8, ::1 or localhost)" },
    );
  }
  throw new AgentError("hub_url_invalid", `must be wss:// (or ws:// to loopback), not ${url.protocol}//`, {
    hint: "set hub.url to wss://<hub host>/<path>",
  });
}

/** 127.0.0.0/8, ::1 (also as an IPv4-mapped address) and the name localhost. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  if (host.toLowerCase() === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) {
    const lower = host.toLowerCase();
    if (lower === "::1" || lower === "0:0:0:0:0:0:0:1") return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && mapped[1]!.startsWith("127.");
  }
  return false;
}
