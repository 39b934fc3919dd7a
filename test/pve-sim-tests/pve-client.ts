import { Agent, fetch } from "undici";
import type { PveSimulator } from "../pve-sim/index.ts";

export interface RawResponse {
  status: number;
  reason: string;
  connection: string | null;
  /** Content-Encoding as sent (undici decompresses the body itself). */
  encoding: string | null;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests inspect arbitrary PVE JSON
  json: any;
}

/**
 * Raw HTTPS requests against the simulator, trusting only its CA (as a client pinning pve-root-ca.pem would).
 * Parameters go in the query for GET/DELETE and form-encoded in the body for POST/PUT, like PVE clients do.
 */
export function rawClient(sim: PveSimulator, authorization?: string) {
  const agent = new Agent({ connect: { ca: sim.caPem } });
  const call = async (
    method: string,
    path: string,
    params: Record<string, string | number> = {},
  ): Promise<RawResponse> => {
    const form = new URLSearchParams(
      Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]),
    );
    const inBody = method === "POST" || method === "PUT";
    const url = `${sim.url}/api2/json${path}${!inBody && form.size ? `?${form}` : ""}`;
    const res = await fetch(url, {
      method,
      dispatcher: agent,
      headers: {
        ...(authorization ? { authorization } : {}),
        ...(inBody ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      ...(inBody ? { body: form.toString() } : {}),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return {
      status: res.status,
      reason: res.statusText,
      connection: res.headers.get("connection"),
      encoding: res.headers.get("content-encoding"),
      text,
      json,
    };
  };
  return {
    call,
    get: (path: string, params?: Record<string, string | number>) => call("GET", path, params),
    post: (path: string, params?: Record<string, string | number>) => call("POST", path, params),
    del: (path: string, params?: Record<string, string | number>) => call("DELETE", path, params),
    /** Polls a task's status until it stopped; returns the final status data. */
    async waitTask(node: string, upid: string) {
      for (;;) {
        const r = await call("GET", `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`);
        if (r.status !== 200) throw new Error(`task status ${r.status} ${r.reason}`);
        if (r.json.data.status === "stopped") return r.json.data;
        await new Promise((res) => setTimeout(res, 20));
      }
    },
    /** The whole task log as text lines. */
    async taskLog(node: string, upid: string): Promise<string[]> {
      const r = await call("GET", `/nodes/${node}/tasks/${encodeURIComponent(upid)}/log`, { limit: 0 });
      return (r.json.data as Array<{ t: string }>).map((l) => l.t);
    },
    close: () => agent.close(),
  };
}
