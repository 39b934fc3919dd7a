import { describe, expect, it } from "vitest";
import { stackResources, stackStartOrder } from "../../agent/restore/stack-order.ts";

describe("the order stacks come back in after a restore", () => {
  const proxy = stackResources("proxy", [
    "services:\n  caddy:\n    image: caddy\nnetworks:\n  default:\n    name: edge\n",
  ]);
  const app = stackResources("app", [
    "services:\n  web:\n    image: x\n    networks: [edge]\nnetworks:\n  edge:\n    external: true\n",
  ]);
  const db = stackResources("db", ["services:\n  pg:\n    image: postgres\n"]);
  const usesDb = stackResources("reports", [
    "services:\n  r:\n    image: x\nnetworks:\n  default:\n    external:\n      name: db_default\n",
  ]);

  it("reads which networks a stack creates and which external ones it needs", () => {
    expect(proxy).toEqual({ project: "proxy", creates: ["edge"], needs: [] });
    expect(app).toEqual({ project: "app", creates: [], needs: ["edge"] });
    expect(db).toEqual({ project: "db", creates: ["db_default"], needs: [] });
  });

  it("brings a stack up after the stack that creates the external network it uses", () => {
    expect(stackStartOrder([app, usesDb, proxy, db])).toEqual([
      ["db", "proxy"],
      ["app", "reports"],
    ]);
  });

  it("falls back to name order for a cycle instead of leaving stacks down", () => {
    const a = { project: "a", creates: ["a_net"], needs: ["b_net"] };
    const b = { project: "b", creates: ["b_net"], needs: ["a_net"] };
    expect(stackStartOrder([b, a])).toEqual([["a", "b"]]);
  });

  it("ignores a compose file it cannot parse", () => {
    expect(stackResources("x", [":\n  - ]["])).toEqual({ project: "x", creates: [], needs: [] });
  });
});
