import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config/load.ts";

const withSchedule = (lines: string) => `
pve:
  url: https://127.0.0.1:8006
  token_id: agent-101@pve!backup
  token_secret_file: /etc/felhom-guest/pve.secret
  tls: { insecure: true }
backup:
  storage: backup
schedule:
${lines}
`;

function issues(text: string) {
  try {
    parseConfig(text, "agent.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected the config to be rejected");
}

describe("schedule config", () => {
  it("refuses a misspelt time zone under schedule.timezone instead of failing when the schedule starts", () => {
    expect(issues(withSchedule('  cron: "30 2 * * *"\n  timezone: Europe/Budpest'))).toEqual([
      { key: "schedule.timezone", problem: expect.stringMatching(/Europe\/Budpest/) },
    ]);
  });

  it("refuses a cron expression the scheduler would refuse, under schedule.cron", () => {
    expect(issues(withSchedule('  cron: "0 30 2 * * *"'))).toEqual([
      { key: "schedule.cron", problem: expect.stringMatching(/5 fields/) },
    ]);
    expect(issues(withSchedule('  cron: "30 25 * * *"'))).toEqual([
      { key: "schedule.cron", problem: expect.stringMatching(/hour/i) },
    ]);
  });

  it("accepts a real IANA time zone and a 5-field expression", () => {
    const config = parseConfig(withSchedule('  cron: "30 2 * * *"\n  timezone: Europe/Budapest'));
    expect(config.schedule).toMatchObject({ cron: "30 2 * * *", timezone: "Europe/Budapest" });
  });
});
