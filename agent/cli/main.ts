#!/usr/bin/env node
import { entry } from "./cli.ts";

await entry();
// The command is over: leave now, rather than wait on timers and pooled connections that only matter to a
// process that goes on (e.g. the quiesce dead man's switch of a stop-mode backup interrupted by shutdown,
// whose stacks the next start resumes from the journal).
process.exit();
