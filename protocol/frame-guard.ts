import { FORBIDDEN_KEYS, MAX_FRAME_BYTES, MAX_NESTING_DEPTH } from "./limits.ts";

/**
 * The checks that run before and right after JSON.parse: they are cheap, linear, never recurse, and
 * keep hostile frames (huge, deeply nested, prototype-polluting) away from the parser and the schema.
 */

export type RawFrame = string | Buffer | ArrayBuffer | Buffer[];

export type GuardFailure = {
  code: "binary_frame" | "frame_too_large" | "invalid_utf8" | "too_deep" | "forbidden_key";
  message: string;
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

function byteLength(raw: Buffer | ArrayBuffer | Buffer[]): number {
  if (Array.isArray(raw)) return raw.reduce((sum, part) => sum + part.byteLength, 0);
  return raw.byteLength;
}

/** Turns a frame into text, checking its size before it is decoded or copied. */
export function frameText(raw: RawFrame, isBinary: boolean | undefined): string | GuardFailure {
  if (isBinary === true)
    return { code: "binary_frame", message: "binary frames are not allowed; send JSON text" };
  const tooLarge = (bytes: number | string): GuardFailure => ({
    code: "frame_too_large",
    message: `the frame has ${bytes} bytes; the limit is ${MAX_FRAME_BYTES}`,
  });
  if (typeof raw === "string") {
    // UTF-8 never takes fewer bytes than UTF-16 code units, so the cheap length check is safe first.
    if (raw.length > MAX_FRAME_BYTES) return tooLarge(`at least ${raw.length}`);
    const bytes = Buffer.byteLength(raw, "utf8");
    return bytes > MAX_FRAME_BYTES ? tooLarge(bytes) : raw;
  }
  if (!(raw instanceof ArrayBuffer || Buffer.isBuffer(raw) || Array.isArray(raw))) {
    return { code: "binary_frame", message: `expected a text frame, got ${typeof raw}` };
  }
  const bytes = byteLength(raw);
  if (bytes > MAX_FRAME_BYTES) return tooLarge(bytes);
  const data = Array.isArray(raw) ? Buffer.concat(raw, bytes) : raw;
  try {
    return utf8.decode(data);
  } catch {
    return { code: "invalid_utf8", message: "the frame is not valid UTF-8" };
  }
}

/** Finds nesting deeper than the limit by scanning the text (strings skipped), before JSON.parse sees it. */
export function checkDepth(text: string): GuardFailure | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > MAX_NESTING_DEPTH) {
        return { code: "too_deep", message: `the frame nests deeper than ${MAX_NESTING_DEPTH} levels` };
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return undefined;
}

const forbidden = new Set(FORBIDDEN_KEYS);

/** Walks a parsed value without recursion and reports the first forbidden key and where it is. */
export function findForbiddenKey(value: unknown): GuardFailure | undefined {
  const stack: { value: unknown; path: string }[] = [{ value, path: "" }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (typeof item.value !== "object" || item.value === null) continue;
    const isArray = Array.isArray(item.value);
    for (const key of Object.keys(item.value)) {
      const path = isArray ? `${item.path}[${key}]` : item.path ? `${item.path}.${key}` : key;
      if (forbidden.has(key)) {
        return { code: "forbidden_key", message: `the key "${key}" is not allowed (at ${path})` };
      }
      stack.push({ value: (item.value as Record<string, unknown>)[key], path });
    }
  }
  return undefined;
}
