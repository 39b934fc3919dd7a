import { z } from "zod";
import { PROTOCOL_VERSION } from "./limits.ts";
import { agentToHubMessage, hubToAgentMessage } from "./messages.ts";

/** The checked-in JSON Schema files, one per direction: a hub validates inbound with one, outbound with the other. */
export const JSON_SCHEMA_FILES = {
  "agent-to-hub.schema.json": { schema: agentToHubMessage, title: "felhom-guest agent → hub message" },
  "hub-to-agent.schema.json": { schema: hubToAgentMessage, title: "felhom-guest hub → agent message" },
} as const;

/**
 * Generated from the zod schemas as *input* schemas: objects do not say `additionalProperties: false`,
 * matching the rule that receivers ignore unknown fields.
 */
export function buildJsonSchemas(): Record<keyof typeof JSON_SCHEMA_FILES, string> {
  const out = {} as Record<keyof typeof JSON_SCHEMA_FILES, string>;
  for (const [file, { schema, title }] of Object.entries(JSON_SCHEMA_FILES)) {
    const json = z.toJSONSchema(schema, { io: "input", target: "draft-2020-12" });
    const document = {
      $id: `https://felhom.example/felhom-guest/protocol/v${PROTOCOL_VERSION}/${file}`,
      title,
      ...json,
    };
    out[file as keyof typeof JSON_SCHEMA_FILES] = `${JSON.stringify(document, null, 2)}\n`;
  }
  return out;
}
