// Timing primitives for the benchmarks: a monotonic clock, quantiles, and the alternating
// runner (A B C A B C ...) that lets drift on a noisy machine fall on every implementation alike.

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function quantile(a: readonly number[], q: number): number {
  const s = [...a].sort((p, r) => p - r);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
}

export interface Summary {
  /** Median of the repeats, ms. */
  ms: number;
  /** (p90 - p10) / median: the run-to-run spread. */
  spread: number;
  reps: number;
}

export function summarize(times: readonly number[]): Summary {
  const ms = quantile(times, 0.5);
  return { ms, spread: (quantile(times, 0.9) - quantile(times, 0.1)) / ms, reps: times.length };
}

export interface Candidate {
  name: string;
  /** Called before each timed call, untimed (e.g. selecting a tfjs backend). */
  before?: () => void;
  /** One timed call. Work that must not be timed (creating inputs) happens outside. */
  run: () => void;
  /** Called after each timed call, untimed (e.g. disposing tfjs tensors). */
  after?: () => void;
}

export interface Budget {
  /** Warm-up calls of each candidate before timing. */
  warm: number;
  /** Repeats: as many as fit in `ms` per candidate, within [min, max]. */
  min: number;
  max: number;
  ms: number;
}

/**
 * Times the candidates alternately. After the warm-up each gets as many repeats as fit in
 * its time budget (slow peers get fewer, down to `min`); every round runs each candidate that
 * still needs samples, in order, so all of them see the same drift.
 */
export function alternate(cands: readonly Candidate[], budget: Budget, onRound?: () => void): Summary[] {
  const once = (c: Candidate): number => {
    c.before?.();
    const t0 = now();
    c.run();
    const dt = now() - t0;
    c.after?.();
    return dt;
  };
  const first = cands.map((c) => {
    let t = once(c);
    // a call of over a second is its own warm-up: caches and allocator are warm after it
    for (let i = 1; i < budget.warm && t < 1000; i++) t = once(c);
    return t;
  });
  const reps = first.map((t) => Math.max(budget.min, Math.min(budget.max, Math.round(budget.ms / Math.max(t, 1e-3)))));
  const times = cands.map(() => [] as number[]);
  const rounds = Math.max(...reps);
  for (let r = 0; r < rounds; r++) {
    cands.forEach((c, i) => {
      if (times[i]!.length < reps[i]!) times[i]!.push(once(c));
    });
    onRound?.();
  }
  return times.map(summarize);
}

/**
 * Per-call time of a very short call: `inner` calls per sample, median over samples,
 * in microseconds.
 */
export function perCallMicros(fn: () => void, inner: number, samples: number): Summary {
  for (let i = 0; i < inner; i++) fn();
  const us: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = now();
    for (let i = 0; i < inner; i++) fn();
    us.push(((now() - t0) * 1000) / inner);
  }
  const sum = summarize(us);
  return sum;
}
