import fc from "fast-check";

/**
 * Builds a fast-check arbitrary from the generated JSON Schema (the subset z.toJSONSchema emits for our
 * schemas). Generating from the *published* schema, then parsing with zod, also checks that the two agree.
 */
type Schema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  propertyNames?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
};

const MAX_ITEMS = 3;

export function arbitraryFromJsonSchema(schema: Schema): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return fc.oneof(...union.map(arbitraryFromJsonSchema));
  switch (schema.type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer": {
      const min = schema.minimum ?? Number.MIN_SAFE_INTEGER;
      const max = schema.maximum ?? Number.MAX_SAFE_INTEGER;
      return fc.oneof(
        fc.constant(min),
        fc.constant(max),
        fc.maxSafeNat().map((n) => min + (n % (max - min + 1))),
      );
    }
    case "number":
      return fc
        .double({
          min: schema.minimum ?? -1e9,
          max: schema.maximum ?? 1e9,
          noNaN: true,
          noDefaultInfinity: true,
        })
        .filter((n) => !Object.is(n, -0));
    case "string":
      return stringArbitrary(schema);
    case "array":
      return fc.array(arbitraryFromJsonSchema(schema.items ?? {}), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? MAX_ITEMS, Math.max(MAX_ITEMS, schema.minItems ?? 0)),
      });
    case "object":
      return objectArbitrary(schema);
    default:
      throw new Error(`the test generator does not know ${JSON.stringify(schema).slice(0, 200)}`);
  }
}

function stringArbitrary(schema: Schema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  const maxLength = schema.maxLength ?? 64;
  let base: fc.Arbitrary<string>;
  if (schema.format === "date-time") {
    base = fc
      .date({
        min: new Date("1970-01-01T00:00:00Z"),
        max: new Date("2999-12-31T23:59:59Z"),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
  } else if (schema.pattern) {
    const full = new RegExp(schema.pattern);
    // fast-check cannot generate lookaheads: generate without them, then keep what the full pattern allows.
    const generator = new RegExp(withoutLookaheads(schema.pattern));
    base = fc.stringMatching(generator).filter((s) => full.test(s));
  } else {
    base = fc.string({ minLength, maxLength: Math.min(maxLength, 64) });
  }
  return base.filter((s) => s.length >= minLength && s.length <= maxLength);
}

function objectArbitrary(schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  if (schema.properties) {
    const required = new Set(schema.required ?? []);
    const entries = Object.entries(schema.properties).map(
      ([key, value]) => [key, arbitraryFromJsonSchema(value)] as const,
    );
    return fc.record(Object.fromEntries(entries), {
      requiredKeys: [...required].filter((k) => k in schema.properties!),
    }) as fc.Arbitrary<Record<string, unknown>>;
  }
  const values = typeof schema.additionalProperties === "object" ? schema.additionalProperties : {};
  const keys = schema.propertyNames ? stringArbitrary(schema.propertyNames) : fc.string({ maxLength: 16 });
  return fc.dictionary(
    keys.filter((k) => !["__proto__", "constructor", "prototype"].includes(k)),
    arbitraryFromJsonSchema(values),
    { maxKeys: MAX_ITEMS },
  );
}

function withoutLookaheads(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (!pattern.startsWith("(?!", i)) {
      out += pattern[i];
      continue;
    }
    let depth = 0;
    for (; i < pattern.length; i++) {
      if (pattern[i] === "\\") i++;
      else if (pattern[i] === "(") depth++;
      else if (pattern[i] === ")" && --depth === 0) break;
    }
  }
  return out;
}
