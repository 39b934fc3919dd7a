import { paramError } from "./http-error.ts";

/**
 * A small subset of PVE::JSONSchema parameter validation: the checks, the order and the messages that a client
 * can observe. `additionalProperties => 0` is the default, as for every PVE API method.
 */
export interface PropSchema {
  type: "string" | "integer" | "boolean" | "number";
  optional?: boolean;
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  minLength?: number;
  /** Returns the format error text (without the "invalid format - " prefix), or undefined when valid. */
  format?: (value: string) => string | undefined;
  /** JSONSchema `requires`: this property needs that other one. */
  requires?: string;
}

export type ParamSchema = Record<string, PropSchema>;
export type Params = Record<string, string | number | undefined>;

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

export function validateParams(schema: ParamSchema, raw: Record<string, string>): Params {
  const errors: Record<string, string> = {};
  const out: Params = {};
  for (const [key, prop] of Object.entries(schema)) {
    const value = raw[key];
    if (value === undefined) {
      if (!prop.optional) errors[key] = "property is missing and it is not optional";
      continue;
    }
    const checked = checkProp(prop, value);
    if (checked.error !== undefined) errors[key] = checked.error;
    else out[key] = checked.value;
  }
  for (const key of Object.keys(raw)) {
    if (!(key in schema))
      errors[key] = "property is not defined in schema and the schema does not allow additional properties";
  }
  for (const [key, prop] of Object.entries(schema)) {
    if (prop.requires && raw[key] !== undefined && raw[prop.requires] === undefined)
      errors[prop.requires] = `missing property required by '${key}'`;
  }
  if (Object.keys(errors).length > 0) throw paramError(errors);
  return out;
}

function checkProp(prop: PropSchema, value: string): { value?: string | number; error?: string } {
  let parsed: string | number = value;
  if (prop.type === "boolean") {
    const v = value.toLowerCase();
    if (TRUE.has(v)) parsed = 1;
    else if (FALSE.has(v)) parsed = 0;
    else return { error: `type check ('boolean') failed - got '${value}'` };
  } else if (prop.type === "integer") {
    if (!/^-?\d+$/.test(value)) return { error: `type check ('integer') failed - got '${value}'` };
    parsed = Number.parseInt(value, 10);
  } else if (prop.type === "number") {
    if (!/^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(value))
      return { error: `type check ('number') failed - got '${value}'` };
    parsed = Number.parseFloat(value);
  }
  if (typeof parsed === "number") {
    if (prop.minimum !== undefined && parsed < prop.minimum)
      return { error: `value must have a minimum value of ${prop.minimum}` };
    if (prop.maximum !== undefined && parsed > prop.maximum)
      return { error: `value must have a maximum value of ${prop.maximum}` };
  } else {
    if (prop.maxLength !== undefined && value.length > prop.maxLength)
      return { error: `value may only be ${prop.maxLength} characters long` };
    if (prop.minLength !== undefined && value.length < prop.minLength)
      return { error: `value must be at least ${prop.minLength} characters long` };
  }
  if (prop.enum && !prop.enum.includes(value))
    return { error: `value '${value}' does not have a value in the enumeration '${prop.enum.join(", ")}'` };
  if (prop.format) {
    const err = prop.format(value);
    if (err !== undefined) return { error: `invalid format - ${err}\n` };
  }
  return { value: parsed };
}

// Standard options of pve-common (JSONSchema.pm `register_format`, `get_standard_option`).
export const formats = {
  node: (v: string) =>
    /^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v)
      ? undefined
      : "value does not look like a valid node name",
  vmid: (v: string) => (/^[1-9][0-9]{2,8}$/.test(v) ? undefined : "value does not look like a valid VM ID"),
  vmidList: (v: string) =>
    v.split(/[,;\s]+/).every((id) => /^[1-9][0-9]{2,8}$/.test(id))
      ? undefined
      : "value does not look like a valid VM ID",
  storageId: (v: string) =>
    /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v) ? undefined : `storage ID '${v}' contains illegal characters`,
  configId: (v: string) => (/^[a-z][a-z0-9_-]+$/i.test(v) ? undefined : `invalid configuration ID '${v}'`),
  userOrTokenId: (v: string) =>
    /^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+(![A-Za-z][A-Za-z0-9.\-_]+)?$/.test(v)
      ? undefined
      : `value '${v}' does not look like a valid user name`,
};

export const stdProps = {
  node: { type: "string", format: formats.node } as PropSchema,
  vmid: { type: "integer", format: formats.vmid, minimum: 100, maximum: 999_999_999 } as PropSchema,
  storage: { type: "string", format: formats.storageId } as PropSchema,
};
