/**
 * Child process for the crash test: quiesces one project, says so on stdout, then waits to be SIGKILLed
 * with the stack down. Usage: node --import tsx quiesce-child.ts <stateDir> <project>
 */
import { DockerEngine } from "../../../agent/docker/docker-engine.ts";
import { prepareQuiesce, quiesceStacks } from "../../../agent/quiesce/quiesce-stacks.ts";

const [stateDir, project] = process.argv.slice(2);
if (!stateDir || !project) throw new Error("usage: quiesce-child.ts <stateDir> <project>");
const deps = { engine: new DockerEngine(), stateDir };
const { plan } = await prepareQuiesce(deps, { projects: [project] });
await quiesceStacks(deps, { backupId: "b-crash", plan });
process.stdout.write("QUIESCED\n");
setInterval(() => undefined, 60_000);
