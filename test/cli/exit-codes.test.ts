import { describe, expect, it } from "vitest";
import { ExitCode, exitCodeFor, UsageError } from "../../agent/cli/exit-codes.ts";
import { checkHubUrl } from "../../agent/config/hub-url.ts";
import { ConfigError } from "../../agent/config/load.ts";
import { AgentError } from "../../agent/lib/errors.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { PveConfigError } from "../../agent/pve/errors.ts";
import { pveConnector } from "../../agent/pve/tls.ts";

const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected it to throw");
};

describe("exit codes", () => {
  it.each([
    ["a plain ws:// hub URL to another host", () => thrown(() => checkHubUrl("ws://192.0.2.10:8765/"))],
    ["a hub URL that is not a URL", () => thrown(() => checkHubUrl("hub.example"))],
    [
      "an unreadable pve.tls.ca_file",
      () => thrown(() => pveConnector({ caFile: "/nonexistent/pve-root-ca.pem" }, silentLogger(), 1_000)),
    ],
    [
      "a malformed pve.tls.fingerprint",
      () => thrown(() => pveConnector({ fingerprint: "AB:CD" }, silentLogger(), 1_000)),
    ],
    ["a malformed pve section", () => new PveConfigError("baseUrl must be https://")],
    ["an invalid config file", () => new ConfigError("agent.yaml", [{ key: "pve.url", problem: "x" }])],
    ["a cron expression the scheduler refuses", () => new AgentError("config_invalid", "schedule.cron: x")],
    ["an unreadable hub.ca_file", () => new AgentError("hub_ca_unreadable", "x")],
    ["a retention policy PVE cannot take", () => new AgentError("pve_prune_policy_invalid", "x")],
    ["a secret file others can read", () => new AgentError("secret_file_unsafe", "x")],
    ["a config file others can write", () => new AgentError("config_file_unsafe", "x")],
  ])("are 78 for %s, so systemd does not restart the daemon into it forever", (_, error) => {
    expect(exitCodeFor(error())).toBe(ExitCode.config);
  });

  it("keep 1 for failures a retry can fix, 75 for busy, 69 for a missing engine and 2 for usage", () => {
    expect(exitCodeFor(new AgentError("pve_unreachable", "x"))).toBe(ExitCode.failed);
    expect(exitCodeFor(new AgentError("outbox_write_failed", "x"))).toBe(ExitCode.failed);
    expect(exitCodeFor(new Error("a bug"))).toBe(ExitCode.failed);
    expect(exitCodeFor(new AgentError("backup_running", "x"))).toBe(ExitCode.busy);
    expect(exitCodeFor(new AgentError("docker_unreachable", "x"))).toBe(ExitCode.unavailable);
    expect(exitCodeFor(new UsageError("x"))).toBe(ExitCode.usage);
  });
});
