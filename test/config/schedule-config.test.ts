import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.ts";
import { configIssues, minimalConfig } from "./support.ts";

const withSchedule = (lines: string) => `${minimalConfig}schedule:\n${lines}\n`;

describe("schedule config", () => {
  it("refuses a misspelt time zone under schedule.timezone instead of failing when the schedule starts", () => {
    expect(configIssues(withSchedule('  cron: "30 2 * * *"\n  timezone: Europe/Budpest'))).toEqual([
      { key: "schedule.timezone", problem: expect.stringMatching(/Europe\/Budpest/) },
    ]);
  });

  it("refuses a cron expression the scheduler would refuse, under schedule.cron", () => {
    expect(configIssues(withSchedule('  cron: "0 30 2 * * *"'))).toEqual([
      { key: "schedule.cron", problem: expect.stringMatching(/5 fields/) },
    ]);
    expect(configIssues(withSchedule('  cron: "30 25 * * *"'))).toEqual([
      { key: "schedule.cron", problem: expect.stringMatching(/hour/i) },
    ]);
  });

  it("accepts a real IANA time zone and a 5-field expression", () => {
    const config = parseConfig(withSchedule('  cron: "30 2 * * *"\n  timezone: Europe/Budapest'));
    expect(config.schedule).toMatchObject({ cron: "30 2 * * *", timezone: "Europe/Budapest" });
  });
});
