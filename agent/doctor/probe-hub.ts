import { CLOSE_CODES, CloseCode, SUBPROTOCOL, shouldReconnect } from "@felhom/protocol";
import WebSocket from "ws";
import { AgentError } from "../lib/errors.ts";
import type { Secret } from "../lib/secret.ts";

/** How long an accepted socket is watched for a hub that authenticates after the upgrade (close 4401). */
const SETTLE_MS = 1_000;
const CREDENTIAL_HINT = "write the credential the hub issued for this guest into hub.credential_file";

/**
 * Dials the hub as the daemon would (TLS with hub.ca_file, the credential, the subprotocol) and stops
 * before `hello`: a hello is answered with `welcome`, and the hub then closes the older socket of the same
 * agent id with 4409 (PROTOCOL.md, Handshake step 4), which would throw the running daemon off its link.
 * What this proves: the hub is reachable, its certificate is trusted, it accepts the credential (HTTP 401/403
 * before the upgrade, or a fatal close within a second after it) and selects `felhom-guest.v1`.
 */
export function probeHub(o: {
  url: string;
  credential: Secret;
  ca?: Buffer;
  timeoutMs: number;
}): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (message: string, hint: string) => {
      clearTimeout(timer);
      ws.terminate();
      reject(new AgentError("hub_probe_failed", message, { hint }));
    };
    const ws = new WebSocket(o.url, SUBPROTOCOL, {
      headers: { Authorization: `Bearer ${o.credential.reveal()}` },
      ...(o.ca ? { ca: o.ca } : {}),
      handshakeTimeout: o.timeoutMs,
      perMessageDeflate: false,
      followRedirects: false,
    });
    const timer = setTimeout(
      () => fail(`no answer from ${o.url} within ${o.timeoutMs} ms`, "check the address and the firewall"),
      o.timeoutMs,
    );
    ws.on("unexpected-response", (req, res) => {
      res.resume();
      req.destroy();
      const status = res.statusCode ?? 0;
      if (status === 401 || status === 403)
        fail(`the hub refused the credential (HTTP ${status})`, CREDENTIAL_HINT);
      else
        fail(
          `the hub answered the upgrade with HTTP ${status}`,
          "check hub.url (scheme, host, port and path)",
        );
    });
    ws.on("error", (err) =>
      fail(
        `cannot reach ${o.url}: ${err.message}`,
        "check hub.url, the firewall and, for a private CA, hub.ca_file",
      ),
    );
    ws.on("open", () => {
      if (ws.protocol !== SUBPROTOCOL) {
        fail(
          `the hub did not select ${SUBPROTOCOL}`,
          "the hub does not speak this agent's protocol: upgrade one of them",
        );
        return;
      }
      const settled = setTimeout(() => {
        clearTimeout(timer);
        ws.removeAllListeners("close");
        ws.close(1000, "felhom-guest doctor");
        resolve(`reachable, credential accepted, ${SUBPROTOCOL} selected`);
      }, SETTLE_MS);
      ws.on("close", (code, reason) => {
        clearTimeout(settled);
        const known = Object.values(CLOSE_CODES).find((c) => c.code === code);
        fail(
          `the hub closed the socket with ${code}${known ? ` (${known.meaning})` : ""}${reason.length ? `: ${reason}` : ""}`,
          code === CloseCode.Unauthorized || code === CloseCode.Forbidden
            ? CREDENTIAL_HINT
            : shouldReconnect(code)
              ? "try again; if it persists, ask the hub's operator"
              : "the hub does not speak this agent's protocol: upgrade one of them",
        );
      });
    });
  });
}
