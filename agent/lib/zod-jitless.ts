import { z } from "zod";

// Imported by the CLI before a command's code runs (cli.ts): no generated parsers. zod compiles each object
// schema it parses into a function of its own (`new Function`), whose source and code stay resident, and the
// daemon's backups kept adding to them (26 such functions idle, 55 after five backups, about 4 KiB of source
// each plus their code; README, "The daemon's idle resident set"). Parsing without them costs microseconds
// per message, which an agent never notices.
z.config({ jitless: true });
