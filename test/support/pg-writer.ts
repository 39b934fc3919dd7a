import { docker } from "./compose.ts";

/**
 * A client committing numbered rows as fast as it can (one autocommit INSERT per psql call), outside
 * the compose project so the agent never quiesces it. Every acknowledged commit is logged as
 * `ack <id> <epoch ms>`; after a failure it re-reads max(id), so an ambiguous commit is never counted
 * twice nor skipped. Downtime as the client sees it is the longest gap between two acks.
 */
const SCRIPT = `
export PGPASSWORD=felhom
q() { psql -h "$DBHOST" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA -c "$1" 2>/dev/null; }
until q "create table if not exists ticks(id int primary key, at timestamptz default now())" >/dev/null; do sleep 0.1; done
i=$(q "select coalesce(max(id),0) from ticks")
while true; do
  n=$((i+1))
  if q "insert into ticks(id) values ($n)" >/dev/null; then i=$n; echo "ack $n $(date +%s%3N)";
  else sleep 0.02; m=$(q "select coalesce(max(id),0) from ticks") && i=$m; fi
done`;

export interface Ack {
  id: number;
  at: number;
}

export class PgWriter {
  private constructor(readonly container: string) {}

  static async start(network: string, dbHost = "db"): Promise<PgWriter> {
    const id = await docker(
      "run",
      "-d",
      "--network",
      network,
      "-e",
      `DBHOST=${dbHost}`,
      "--entrypoint",
      "sh",
      "local/postgres:15",
      "-c",
      SCRIPT,
    );
    return new PgWriter(id);
  }

  async acks(): Promise<Ack[]> {
    const out = await docker("logs", this.container);
    return out
      .split("\n")
      .map((l) => /^ack (\d+) (\d+)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ id: Number(m[1]), at: Number(m[2]) }));
  }

  async waitForAcks(n: number, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((await this.acks()).length < n) {
      if (Date.now() > until) throw new Error(`writer did not reach ${n} commits in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    // -v: the image declares a VOLUME; without it every run would leave an anonymous volume behind.
    await docker("rm", "-f", "-v", this.container).catch(() => {});
  }
}

/** The longest interval between consecutive acknowledged commits within [from, to]. */
export function longestGapMs(acks: Ack[], from = 0, to = Number.POSITIVE_INFINITY): number {
  const inWindow = acks.filter((a) => a.at >= from && a.at <= to).map((a) => a.at);
  let gap = 0;
  for (let i = 1; i < inWindow.length; i++) gap = Math.max(gap, inWindow[i]! - inWindow[i - 1]!);
  return gap;
}
