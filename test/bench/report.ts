export interface BenchFigure {
  metric: string;
  value: number;
  unit: string;
  /** The same quantity for the comparison, measured in the same run; null when there is none. */
  baseline?: number | null;
  /** value / baseline; computed when omitted and a baseline is given. */
  ratio?: number | null;
}

export type BenchReport = (figure: BenchFigure) => void;

const round = (n: number) => Math.round(n * 1000) / 1000;

export function formatFigure(bench: string, f: BenchFigure): string {
  const baseline = f.baseline ?? null;
  const ratio = f.ratio ?? (baseline ? f.value / baseline : null);
  return JSON.stringify({
    bench,
    metric: f.metric,
    value: round(f.value),
    unit: f.unit,
    baseline: baseline === null ? null : round(baseline),
    ratio: ratio === null ? null : round(ratio),
  });
}

/** The median of a non-empty list of samples. */
export function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The most samples in any window of `windowMs` (sliding), for timestamps in ascending order. */
export function peakInWindow(times: number[], windowMs: number): number {
  let peak = 0;
  for (let lo = 0, hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! >= windowMs) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}
