/**
 * `npm run bench [-- NAME …]`: runs every `test/bench/<name>.bench.ts` (or the named ones) one after the
 * other and prints one JSON line per measured figure:
 *   {"bench": "...", "metric": "...", "value": n, "unit": "...", "baseline": n|null, "ratio": n|null}
 * `baseline` is the comparison measured in the same run (never a stored number), `ratio` = value / baseline.
 * Benchmarks are not tests: they never fail on a number. A benchmark that throws is reported on stderr and
 * the harness exits 1, because then it measured nothing.
 */
import { readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type BenchFigure, type BenchReport, formatFigure } from "./report.ts";

const here = dirname(fileURLToPath(import.meta.url));
const SUFFIX = ".bench.ts";

async function main(): Promise<number> {
  const available = (await readdir(here))
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length));
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  const unknown = wanted.filter((w) => !available.includes(w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; available: ${available.join(", ")}\n`);
    return 2;
  }
  let failed = 0;
  for (const name of wanted.length > 0 ? wanted : available.sort()) {
    const mod = (await import(pathToFileURL(join(here, `${name}${SUFFIX}`)).href)) as {
      default: (report: BenchReport) => Promise<void>;
    };
    const report: BenchReport = (figure: BenchFigure) =>
      process.stdout.write(`${formatFigure(name, figure)}\n`);
    try {
      await mod.default(report);
    } catch (err) {
      failed++;
      process.stderr.write(`benchmark ${name} failed: ${(err as Error).stack ?? err}\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main();
