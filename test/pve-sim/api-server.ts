import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import { gzipSync } from "node:zlib";
import type { AccessModel } from "./access-model.ts";
import type { Faults } from "./faults.ts";
import { PveHttpError } from "./http-error.ts";
import { type ParamSchema, type Params, validateParams } from "./schema.ts";

/** One API method, declared like a PVE `register_method`. */
export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** e.g. "/nodes/{node}/lxc/{vmid}/status/current" */
  path: string;
  /** Parameters including the path ones; unknown keys are rejected. */
  schema: ParamSchema;
  /** The declared `permissions` check: runs BEFORE parameter validation, on the raw values (as in PVE). */
  permission?: (user: string, raw: Record<string, string>) => void;
  /** `allowtoken => 0` */
  noToken?: boolean;
  handler: (ctx: HandlerContext) => unknown | Promise<unknown>;
}

export interface HandlerContext {
  /** The authenticated principal: `user@realm` or the full token id. */
  user: string;
  params: Params;
  /** Extra top-level response attributes such as `total`. */
  attrs: Record<string, unknown>;
}

export interface RequestLogEntry {
  method: string;
  /** Relative to /api2/json, e.g. "/nodes/pve1/vzdump". */
  path: string;
  params: Record<string, string>;
  tokenId?: string;
  user?: string;
  status: number;
  /** ms epoch when the request arrived */
  at: number;
}

export interface ApiServerOptions {
  key: string;
  cert: string;
  access: AccessModel;
  faults: Faults;
  routes: Route[];
  authFailureDelayMs: number;
  errorStyle: "new" | "old";
  log: RequestLogEntry[];
}

interface CompiledRoute extends Route {
  re: RegExp;
  names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const re = new RegExp(
    `^${route.path.replace(/\{(\w+)\}/g, (_m, n: string) => {
      names.push(n);
      return "([^/]+)";
    })}$`,
  );
  return { ...route, re, names };
}

/** uri_unescape: %XX decoding only. */
function uriUnescape(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/** PVE::APIServer `extract_auth_value` + pve-manager `auth_handler` token split (secret after the LAST `=`). */
export function parseTokenHeader(
  header: string | undefined,
): { tokenid: string; secret: string } | undefined {
  if (!header) return undefined;
  const m = /(?:^|\s)PVEAPIToken(?:=| )([^;]*)/.exec(header);
  if (!m) return undefined;
  const value = uriUnescape(m[1] as string);
  const split = /^(.*)=(.*)$/s.exec(value);
  if (!split) return { tokenid: value, secret: "" };
  return { tokenid: split[1] as string, secret: split[2] as string };
}

function decodeForm(body: string, into: Record<string, string>): void {
  for (const [k, v] of new URLSearchParams(body)) into[k] = v;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The reason phrase: first line only, and only characters an HTTP status line may carry. */
function reasonPhrase(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/[^\t\x20-\x7e\x80-\xff]/g, "?");
}

export class ApiServer {
  readonly server: Server;
  private readonly routes: CompiledRoute[];
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: ApiServerOptions) {
    this.routes = opts.routes.map(compile);
    this.server = createServer({ key: opts.key, cert: opts.cert }, (req, res) => {
      void this.handle(req, res);
    });
    // pveproxy: 5 s idle timeout and at most 100 requests per keep-alive connection
    this.server.keepAliveTimeout = 5000;
    this.server.maxRequestsPerSocket = 100;
    this.server.on("secureConnection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    return addr.port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? "/", "https://localhost");
    const method = (req.method ?? "GET").toUpperCase();
    const prefix = "/api2/json";
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) || "/" : url.pathname;
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) params[k] = v;
    const body = await readBody(req);
    if (body) {
      if ((req.headers["content-type"] ?? "").includes("application/json")) {
        try {
          for (const [k, v] of Object.entries(JSON.parse(body) as Record<string, unknown>))
            params[k] = typeof v === "string" ? v : JSON.stringify(v);
        } catch {
          /* PVE ignores a body it cannot decode the same way: the parameters are simply missing */
        }
      } else decodeForm(body, params);
    }
    const entry: RequestLogEntry = { method, path, params, status: 0, at };
    this.opts.log.push(entry);

    const delay = this.opts.faults.delayFor(method, path);
    if (delay) await sleep(delay);
    const fault = this.opts.faults.take(method, path);
    if (fault?.kind === "hang") return;
    if (fault?.kind === "drop") {
      entry.status = -1;
      res.socket?.write(
        'HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: 4096\r\n\r\n{"data":',
      );
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === "fail")
      return this.send(res, entry, fault.status, "simulated failure", { data: null });

    // Authentication comes first, even for unknown paths (pve-manager HTTPServer `auth_handler`).
    const token = parseTokenHeader(req.headers.authorization);
    if (!token) return this.unauthorized(res, entry, "No ticket");
    entry.tokenId = token.tokenid;
    if (!this.opts.access.verifyToken(token.tokenid, token.secret))
      return this.unauthorized(res, entry, "Authentication failed!");
    const user = token.tokenid;
    entry.user = user.split("!")[0];

    const found = this.match(method, path);
    if (!found)
      return this.fail(res, entry, new PveHttpError(501, `Method '${method} ${path}' not implemented`));
    const { route, uriParams } = found;
    if (route.noToken)
      return this.fail(
        res,
        entry,
        new PveHttpError(403, `URI '${path}' not available with API token, need proper ticket.`),
      );
    for (const k of Object.keys(uriParams)) {
      if (k in params)
        return this.fail(
          res,
          entry,
          new PveHttpError(400, `Parameter verification failed - duplicate parameter '${k}'`),
        );
    }
    const raw = { ...params, ...uriParams };
    try {
      route.permission?.(user, raw);
      const validated = validateParams(route.schema, raw);
      const ctx: HandlerContext = { user, params: validated, attrs: {} };
      const data = await route.handler(ctx);
      this.send(res, entry, 200, "OK", { data: data ?? null, ...ctx.attrs });
    } catch (err) {
      this.fail(res, entry, err);
    }
  }

  private match(
    method: string,
    path: string,
  ): { route: CompiledRoute; uriParams: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const m = route.re.exec(path);
      if (!m) continue;
      const uriParams: Record<string, string> = {};
      route.names.forEach((n, i) => {
        uriParams[n] = decodeURIComponent(m[i + 1] as string);
      });
      return { route, uriParams };
    }
    return undefined;
  }

  private async unauthorized(res: ServerResponse, entry: RequestLogEntry, reason: string): Promise<void> {
    await sleep(this.opts.authFailureDelayMs);
    entry.status = 401;
    res.statusCode = 401;
    res.statusMessage = reason;
    res.setHeader("Connection", "close");
    res.setHeader("Content-Length", 0);
    res.end();
  }

  private fail(res: ServerResponse, entry: RequestLogEntry, err: unknown): void {
    const e =
      err instanceof PveHttpError ? err : new PveHttpError(500, (err as Error)?.message ?? String(err));
    const body: Record<string, unknown> = { data: null };
    if (this.opts.errorStyle === "new") body.message = `${e.message.replace(/\n$/, "")}\n`;
    if (e.errors) body.errors = e.errors;
    this.send(res, entry, e.status, e.message, body);
  }

  private send(
    res: ServerResponse,
    entry: RequestLogEntry,
    status: number,
    reason: string,
    body: unknown,
  ): void {
    entry.status = status;
    let payload = Buffer.from(JSON.stringify(body));
    res.statusCode = status;
    res.statusMessage = reasonPhrase(reason);
    res.setHeader("Content-Type", "application/json;charset=UTF-8");
    // pveproxy compresses bodies over 1 KiB for clients that accept gzip
    if (payload.length > 1024 && /\bgzip\b/.test(String(res.req.headers["accept-encoding"] ?? ""))) {
      payload = gzipSync(payload);
      res.setHeader("Content-Encoding", "gzip");
    }
    res.setHeader("Content-Length", payload.length);
    if (status >= 400) res.setHeader("Connection", "close");
    res.end(payload);
  }
}
