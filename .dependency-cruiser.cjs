// The layers of agent/ and the rules that keep imports one-way, checked by `npm run lint` (depcruise).
// A module may import its own directory and any layer below it; never a layer above, and never a sibling
// of its own layer (siblings do not know each other). README.md, "Layout", says the same in prose.
//
// Bottom to top:
const LAYERS = [
  // Generic helpers that know nothing of guests, backups or hubs (errors, secrets, file trust, cron syntax),
  // and the agent's version.
  ["lib", "version.ts"],
  // Structured logging.
  ["log"],
  // Durable files in the state dir.
  ["state"],
  // agent.yaml: its schema, loading and checks. Every part above reads its own section from it.
  ["config"],
  // Adapters to the outside world, one each, unaware of each other: the PVE API, the Docker engine, the
  // hub's WebSocket, and the clock (the cron schedule).
  ["pve", "docker", "hub", "schedule"],
  // Quiescing and resuming the guest's compose stacks (on the Docker adapter).
  ["quiesce"],
  // Who this guest is: identity checks against PVE, enrollment, the restored-copy record.
  ["identity"],
  // What every operation shares: one at a time (the lock keyed by kind and id), the journal's section per
  // kind, and the one quiesce they go through (withQuiescedStacks).
  ["operation"],
  // The operations: a backup (vzdump with quiesced stacks) and bringing stacks up after a restore.
  ["backup", "restore"],
  // What builds on a backup: PVE snapshots (same lock and quiesce), the metrics textfile, doctor's checks.
  ["snapshot", "metrics", "doctor"],
  // The boot sequence: who am I after a start, replay what a crash left, bring stacks up.
  ["boot"],
  // The daemon and its wiring: one context of adapters, the hub's command handlers, the control socket.
  ["app"],
  // The command line.
  ["cli"],
];

const path = (name) => (name.endsWith(".ts") ? `^agent/${name.replace(".", "[.]")}$` : `^agent/${name}/`);

const layerRules = LAYERS.flatMap((layer, rank) =>
  layer.flatMap((name) => {
    const forbidden = [...layer.filter((other) => other !== name), ...LAYERS.slice(rank + 1).flat()];
    if (forbidden.length === 0) return []; // the top layer may import everything
    return {
      name: `layer-${name.replace(".ts", "")}`,
      comment: `agent/${name} (layer ${rank + 1} of ${LAYERS.length}) imports its own code and lower layers only, not ${forbidden.join(", ")}`,
      severity: "error",
      from: { path: path(name) },
      to: { path: forbidden.map(path) },
    };
  }),
);

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: "agent-in-a-layer",
      comment:
        "every module of agent/ belongs to a layer: a new directory goes into LAYERS above, or no rule would hold it",
      severity: "error",
      from: { path: "^agent/", pathNot: LAYERS.flat().map(path) },
      to: {},
    },
    {
      name: "no-circular",
      comment: "a cycle makes the layers meaningless and the load order fragile",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "protocol-only-zod",
      comment:
        "@felhom/protocol is installed by hubs on its own: it depends on nothing but zod (protocol/scripts is npm tooling)",
      severity: "error",
      from: { path: "^protocol/", pathNot: "^protocol/scripts/" },
      to: { pathNot: ["^protocol/", "^node_modules/zod/"] },
    },
    {
      name: "protocol-by-name",
      comment: "the agent imports the contract as a hub does: `@felhom/protocol`, not a path into protocol/",
      severity: "error",
      from: { path: "^agent/" },
      to: { path: "^protocol/", dependencyTypesNot: ["aliased-workspace"] },
    },
    {
      name: "agent-not-to-test",
      comment: "what ships must not import the tests",
      severity: "error",
      from: { path: "^(agent|protocol)/" },
      to: { path: "^test/" },
    },
  ],
  options: {
    // TypeScript through swc: the repo's tsc (TypeScript 7) has no JavaScript API for dependency-cruiser.
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    doNotFollow: { path: "node_modules" },
    // Build output; not a dependency's dist/, which is where node-cron's code lives.
    exclude: { path: "^(protocol/)?dist/" },
  },
};
