import type { Secret } from "../lib/secret.ts";
import type { Logger } from "../log/logger.ts";
import {
  PveAbortedError,
  PveAuthenticationError,
  PveConfigError,
  type PveError,
  PveHttpError,
  PveNetworkError,
  PveNotImplementedError,
  PveParameterError,
  PvePermissionError,
  PveResponseError,
  PveServerError,
  PveTimeoutError,
  PveTlsError,
  PveTlsPinMismatchError,
} from "./errors.ts";
import { defaultRetryPolicy, type RetryPolicy } from "./retry.ts";
import { type PveTls, pveConnector } from "./tls.ts";
import { Pool, request } from "./undici-core.ts";

export interface PveTimeouts {
  connectMs: number;
  /** Until the response headers arrive. PVE answers a 401 only after 3 s. */
  headersMs: number;
  bodyMs: number;
}

export interface PveConnection {
  baseUrl: string;
  /** `USER@REALM!TOKENID` */
  tokenId: string;
  secret: Secret;
  tls: PveTls;
  timeouts?: Partial<PveTimeouts>;
  retry?: RetryPolicy;
}

export type QueryValue = string | number | boolean | undefined;
export type Method = "GET" | "POST" | "PUT" | "DELETE";

export interface CallOptions {
  query?: Record<string, QueryValue>;
  /** Sent form-encoded, like every PVE client does. */
  form?: Record<string, string>;
  signal?: AbortSignal;
  headersTimeoutMs?: number;
}

/** PVE's response envelope: `data`, plus `total` on paged lists such as the task log. */
export interface Envelope {
  data: unknown;
  total?: number;
}

const DEFAULT_TIMEOUTS: PveTimeouts = { connectMs: 10_000, headersMs: 30_000, bodyMs: 30_000 };
const TOKEN_ID_RE = /^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/;
// Connection failures in which no byte of the request can have left the guest.
const NOT_SENT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);
const TLS_CODE_RE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/;

function encodeQuery(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    params.append(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * The HTTP layer of the PVE client: one undici Pool per client, token auth, error translation, and
 * bounded retries of idempotent reads. Nothing above this file sees undici.
 */
export class PveTransport {
  readonly #pool: Pool;
  readonly #auth: string;
  readonly #host: string;
  readonly #retry: RetryPolicy;
  readonly #timeouts: PveTimeouts;
  readonly #logger: Logger;

  constructor(connection: PveConnection, logger: Logger) {
    if (!TOKEN_ID_RE.test(connection.tokenId)) {
      throw new PveConfigError(
        `tokenId must look like user@realm!tokenid, got ${JSON.stringify(connection.tokenId)}`,
      );
    }
    const url = URL.canParse(connection.baseUrl) ? new URL(connection.baseUrl) : undefined;
    if (url?.protocol !== "https:") {
      throw new PveConfigError(`baseUrl must be https://, got ${connection.baseUrl}`);
    }
    this.#host = url.host;
    this.#logger = logger;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...connection.timeouts };
    this.#retry = connection.retry ?? defaultRetryPolicy;
    this.#auth = `PVEAPIToken=${connection.tokenId}=${connection.secret.reveal()}`;
    this.#pool = new Pool(url.origin, {
      connect: pveConnector(connection.tls, logger, this.#timeouts.connectMs),
      connections: 4,
      // pveproxy drops idle keep-alive connections after 5 s; give them up before it does.
      keepAliveTimeout: 3_000,
      keepAliveMaxTimeout: 4_000,
      headersTimeout: this.#timeouts.headersMs,
      bodyTimeout: this.#timeouts.bodyMs,
    });
  }

  async call(method: Method, path: string, options: CallOptions = {}): Promise<Envelope> {
    const label = `${method} ${path}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once(method, path, label, options);
      } catch (err) {
        const pveErr = err as PveError;
        const mayRetry =
          pveErr.retryable &&
          (method === "GET" || (pveErr instanceof PveNetworkError && !pveErr.mayHaveReachedServer)) &&
          attempt < this.#retry.maxAttempts &&
          !options.signal?.aborted;
        if (!mayRetry) throw err;
        this.#logger.warn(
          { method, path, attempt, code: pveErr.code, err: pveErr.message },
          "PVE request failed, retrying",
        );
        try {
          await this.#retry.wait(attempt, options.signal);
        } catch {
          throw new PveAbortedError(label);
        }
      }
    }
  }

  async #once(method: Method, path: string, label: string, options: CallOptions): Promise<Envelope> {
    const headers: Record<string, string> = { authorization: this.#auth, accept: "application/json" };
    let body: string | undefined;
    if (options.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(options.form).toString();
    }
    let res: Awaited<ReturnType<typeof request>>;
    let text: string;
    try {
      res = await request(this.#pool, {
        method,
        path: `/api2/json${path}${encodeQuery(options.query)}`,
        headers,
        body,
        signal: options.signal,
        headersTimeout: options.headersTimeoutMs ?? this.#timeouts.headersMs,
        bodyTimeout: this.#timeouts.bodyMs,
      });
      text = await res.body.text();
    } catch (err) {
      throw this.#translateNetworkError(label, err, options.signal);
    }
    this.#logger.debug({ method, path, status: res.statusCode }, "PVE request");
    return parseResponse(label, res.statusCode, res.statusText, text);
  }

  #translateNetworkError(label: string, err: unknown, signal: AbortSignal | undefined): PveError {
    if (err instanceof PveTlsPinMismatchError) return err;
    if (signal?.aborted) return new PveAbortedError(label);
    const code = String((err as { code?: unknown }).code ?? "");
    const what = `${(err as Error).message ?? String(err)}${code ? ` (${code})` : ""}`;
    if (code === "UND_ERR_CONNECT_TIMEOUT")
      return new PveTimeoutError(label, `connect timed out: ${what}`, false, err);
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      return new PveTimeoutError(label, `no complete answer in time: ${what}`, true, err);
    }
    if (NOT_SENT_CODES.has(code)) return new PveNetworkError(label, `cannot connect: ${what}`, false, err);
    if (TLS_CODE_RE.test(code)) return new PveTlsError(this.#host, what, err);
    return new PveNetworkError(label, `connection failed: ${what}`, true, err);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function firstLine(text: string): string {
  return text.split("\n")[0]!.trim();
}

/**
 * Maps a response to data or to a typed error. PVE ≥ libpve-http-server-perl 5.2.0 puts the error text in
 * `message`; older hosts send it only as the HTTP reason phrase, which undici's `request` exposes as
 * `statusText`. Both are read; `message` wins because the reason phrase is cut to one line.
 */
export function parseResponse(label: string, status: number, statusText: string, text: string): Envelope {
  let json: { data?: unknown; total?: unknown; errors?: unknown; message?: unknown } | undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (status >= 200 && status < 300) {
    if (!json || typeof json !== "object" || !("data" in json)) {
      throw new PveResponseError(label, `status ${status} without a JSON data field`);
    }
    const envelope: Envelope = { data: json.data };
    if (typeof json.total === "number") envelope.total = json.total;
    else if (typeof json.total === "string" && /^\d+$/.test(json.total)) envelope.total = Number(json.total);
    return envelope;
  }
  const message = typeof json?.message === "string" && json.message.trim() ? firstLine(json.message) : "";
  const reason = message || statusText.trim() || `HTTP ${status}`;
  if (status === 401) return throwIt(new PveAuthenticationError(label, reason));
  if (status === 403) return throwIt(new PvePermissionError(label, reason));
  if (status === 400) {
    const errors: Record<string, string> = {};
    if (json?.errors && typeof json.errors === "object") {
      for (const [k, v] of Object.entries(json.errors)) errors[k] = String(v);
    }
    return throwIt(new PveParameterError(label, reason, errors));
  }
  if (status === 501) return throwIt(new PveNotImplementedError(label, reason));
  if (status >= 500) return throwIt(new PveServerError(label, status, reason));
  return throwIt(new PveHttpError(label, status, reason));
}

function throwIt(err: PveError): never {
  throw err;
}
