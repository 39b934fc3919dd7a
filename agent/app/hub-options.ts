import type { AgentConfig } from "../config/schema.ts";
import type { HubClientOptions } from "../hub/hub-client.ts";

/** The part of the options that comes straight from the config file's `hub` section. */
export function hubOptionsFromConfig(
  hub: NonNullable<AgentConfig["hub"]>,
  stateDir: string,
): Pick<
  HubClientOptions,
  "url" | "credentialFile" | "caFile" | "stateDir" | "outbox" | "statusIntervalSeconds"
> {
  return {
    url: hub.url,
    credentialFile: hub.credential_file,
    ...(hub.ca_file === undefined ? {} : { caFile: hub.ca_file }),
    stateDir,
    outbox: { maxEvents: hub.outbox.max_events, maxBytes: hub.outbox.max_bytes },
    statusIntervalSeconds: hub.status_interval_seconds,
  };
}
