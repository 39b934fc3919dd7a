import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.ts";
import { configIssues, minimalConfig } from "./support.ts";

describe("config", () => {
  it("accepts the shipped example config", async () => {
    const text = await readFile(new URL("../../packaging/agent.example.yaml", import.meta.url), "utf8");
    const config = parseConfig(text);
    expect(config.backup.retention).toEqual({ keep_last: 3, keep_daily: 7, keep_weekly: 4 });
    expect(config.schedule?.missed).toBe("run");
  });

  it("fills defaults for everything optional", () => {
    const config = parseConfig(minimalConfig);
    expect(config.backup.mode).toBe("snapshot");
    expect(config.backup.max_downtime_seconds).toBe(300);
    expect(config.backup.busy_retry).toEqual({ attempts: 10, delay_seconds: 60 });
    expect(config.state_dir).toBe("/var/lib/felhom-guest");
    expect(config.docker.socket).toBe("/var/run/docker.sock");
    expect(config.hub).toBeUndefined();
  });

  it("names an unknown key with its full path, so a typo never falls back to a default silently", () => {
    expect(configIssues(`${minimalConfig}  max_downtime_secnds: 10\n`)).toEqual([
      { key: "backup.max_downtime_secnds", problem: "unknown key" },
    ]);
  });

  it("names the key and the problem for a wrong type and a missing key", () => {
    const found = configIssues(minimalConfig.replace("storage: backup", "mode: fast"));
    expect(found.map((i) => i.key).sort()).toEqual(["backup.mode", "backup.storage"]);
    expect(found.find((i) => i.key === "backup.mode")?.problem).toMatch(/snapshot.*stop/);
  });

  it("refuses an inline secret and a plain http PVE URL", () => {
    const found = configIssues(
      minimalConfig.replace("https://", "http://").replace("token_secret_file", "token_secret"),
    );
    expect(found.map((i) => i.key)).toEqual(
      expect.arrayContaining(["pve.url", "pve.token_secret", "pve.token_secret_file"]),
    );
  });

  it("requires exactly one TLS trust choice", () => {
    const found = configIssues(
      minimalConfig.replace("{ insecure: true }", "{ insecure: true, ca_file: /x.pem }"),
    );
    expect(found).toEqual([
      { key: "pve.tls", problem: "set exactly one of fingerprint, ca_file or insecure" },
    ]);
  });

  it("reports YAML syntax errors with the line", () => {
    const found = configIssues("pve: [unclosed\n");
    expect(found[0]!.key).toMatch(/^line \d+$/);
  });

  const withHub = (url: string) =>
    `${minimalConfig}hub:\n  url: ${JSON.stringify(url)}\n  credential_file: /etc/felhom-guest/hub.credential\n`;

  it.each([
    "wss://hub.example.net/agent",
    "ws://127.0.0.1:8765/agent",
    "ws://127.9.9.9/agent",
    "ws://localhost:8765/",
    "ws://[::1]:8765/",
  ])("accepts the hub URL %s (wss:// anywhere, ws:// to this machine)", (url) => {
    expect(parseConfig(withHub(url)).hub?.url).toBe(url);
  });

  it.each([
    ["ws://192.0.2.10:8765/agent", /plain ws:\/\/ to a host other than this machine/],
    ["ws://hub.example.net/agent", /plain ws:\/\//],
    ["ws://localhost.evil.example/", /plain ws:\/\//],
    ["https://hub.example.net/", /must be wss:\/\//],
    ["hub.example.net", /is not a URL/],
  ])("rejects the hub URL %s under the key hub.url, as the hub link would at start", (url, problem) => {
    const found = configIssues(withHub(url));
    expect(found).toEqual([{ key: "hub.url", problem: expect.stringMatching(problem) }]);
  });

  it("rejects a duplicated key instead of taking the last one", () => {
    expect(configIssues(`${minimalConfig}backup:\n  storage: other\n`)[0]!.problem).toMatch(/unique/i);
  });
});
