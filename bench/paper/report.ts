// The demo's report: Markdown tables, the summary over seeds, and the comparison with the
// authors' table (the figure is in figure.ts).
import type { InferUse } from '../../lib/index';
import { NORM_NAMES, type Norm } from './model';

export interface EpochRow {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  valLoss: number;
  valAcc: number;
  seconds: number;
}

export interface GridRow {
  use: InferUse;
  loss: number;
  acc: number;
}

export interface RunResult {
  norm: Norm;
  batchSize: number;
  seed: number;
  /** Training digits. */
  train: number;
  epochs: EpochRow[];
  /** Test loss/accuracy after the last epoch, default inference (BLN: all flags false, i.e. mini-batch statistics). */
  test: { loss: number; acc: number };
  /** The epoch with the lowest validation loss, and the test figures of its checkpoint (default inference). */
  bestEpoch: number;
  testAtBest: { loss: number; acc: number };
  /** BLN only: the 16 configurations on the validation set (best checkpoint), best first, and the test score of the best. */
  grid?: GridRow[];
  testBest?: { loss: number; acc: number };
  trainSeconds: number;
  evalSeconds: number;
}

export interface ReportInput {
  command: string;
  settings: Record<string, string | number>;
  runs: RunResult[];
  wallSeconds: number;
  environment: string;
}

const f4 = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : String(v));
const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(2)}%` : String(v));

export function useLabel(u: InferUse): string {
  const on = (['batchMean', 'batchVar', 'featureMean', 'featureVar'] as const).filter((k) => u[k]);
  return on.length ? on.join('+') : 'none (mini-batch)';
}

export function flagsCells(u: InferUse): string {
  return [u.batchMean, u.batchVar, u.featureMean, u.featureVar].map((b) => (b ? 'pop' : 'batch')).join(' | ');
}


export function epochTable(r: RunResult): string {
  const lines = ['| epoch | train loss | train acc | val loss | val acc | time |', '|---:|---:|---:|---:|---:|---:|'];
  for (const e of r.epochs) lines.push(`| ${e.epoch} | ${f4(e.trainLoss)} | ${pct(e.trainAcc)} | ${f4(e.valLoss)} | ${pct(e.valAcc)} | ${e.seconds.toFixed(1)} s |`);
  return lines.join('\n');
}

export function gridTable(grid: GridRow[]): string {
  const lines = [
    '| rank | batch mean | batch var | feature mean | feature var | val loss | val acc |',
    '|---:|---|---|---|---|---:|---:|',
  ];
  grid.forEach((g, i) => lines.push(`| ${i + 1} | ${flagsCells(g.use)} | ${f4(g.loss)} | ${pct(g.acc)} |`));
  return lines.join('\n');
}

export function summaryTable(runs: RunResult[]): string {
  const lines = [
    '| norm | batch | seed | train digits | final train loss | final val loss | final val acc | test acc, last epoch | best epoch (val loss) | test acc, best epoch | BLN: test acc, best inference config | train time |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of runs) {
    const last = r.epochs[r.epochs.length - 1]!;
    const best = r.testBest && r.grid ? `${pct(r.testBest.acc)} (${useLabel(r.grid[0]!.use)})` : '–';
    lines.push(
      `| ${NORM_NAMES[r.norm]} | ${r.batchSize} | ${r.seed} | ${r.train} | ${f4(last.trainLoss)} | ${f4(last.valLoss)} | ${pct(last.valAcc)} | ${pct(r.test.acc)} | ${r.bestEpoch} | ${pct(r.testAtBest.acc)} | ${best} | ${r.trainSeconds.toFixed(0)} s |`,
    );
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ over seeds

export interface Stat {
  mean: number;
  sd: number; // sample standard deviation; NaN for one value
  n: number;
}

export function stat(v: number[]): Stat {
  const n = v.length;
  const mean = v.reduce((s, x) => s + x, 0) / n;
  const sd = n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, sd, n };
}

/** "97.12% ± 0.20" (percent points) or "97.12%" for one seed. */
export function pctStat(s: Stat): string {
  return s.n > 1 ? `${(100 * s.mean).toFixed(2)}% ± ${(100 * s.sd).toFixed(2)}` : pct(s.mean);
}

function numStat(s: Stat, digits = 4): string {
  return s.n > 1 ? `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}` : s.mean.toFixed(digits);
}

export interface Group {
  norm: Norm;
  batchSize: number;
  runs: RunResult[];
}

export function groups(runs: RunResult[]): Group[] {
  const out: Group[] = [];
  for (const r of runs) {
    let g = out.find((x) => x.norm === r.norm && x.batchSize === r.batchSize);
    if (!g) out.push((g = { norm: r.norm, batchSize: r.batchSize, runs: [] }));
    g.runs.push(r);
  }
  return out;
}

const lastOf = (r: RunResult) => r.epochs[r.epochs.length - 1]!;

/** Mean ± sd over seeds per norm and batch size (sd only where more than one seed ran). */
export function seedTable(runs: RunResult[]): string {
  const lines = [
    '| norm | batch | seeds | final train loss | final val loss | test acc, last epoch | best epoch (val loss) | test acc, best epoch | BLN: test acc, best inference config (best epoch) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const g of groups(runs)) {
    const rs = g.runs;
    const grid = rs.every((r) => r.testBest) ? pctStat(stat(rs.map((r) => r.testBest!.acc))) : '–';
    lines.push(
      `| ${NORM_NAMES[g.norm]} | ${g.batchSize} | ${rs.length} | ${numStat(stat(rs.map((r) => lastOf(r).trainLoss)))} | ${numStat(stat(rs.map((r) => lastOf(r).valLoss)))} | ` +
        `${pctStat(stat(rs.map((r) => r.test.acc)))} | ${rs.map((r) => r.bestEpoch).join(', ')} | ${pctStat(stat(rs.map((r) => r.testAtBest.acc)))} | ${grid} |`,
    );
  }
  return lines.join('\n');
}

/** Training loss per epoch (mean over seeds) of each norm at one batch size, side by side. */
export function lossPerEpochTable(runs: RunResult[], batchSize: number, key: 'trainLoss' | 'valLoss'): string {
  const gs = groups(runs).filter((g) => g.batchSize === batchSize);
  const n = Math.max(0, ...gs.map((g) => Math.min(...g.runs.map((r) => r.epochs.length))));
  const lines = [`| epoch | ${gs.map((g) => NORM_NAMES[g.norm]).join(' | ')} |`, `|---:|${gs.map(() => '---:').join('|')}|`];
  for (let e = 0; e < n; e++) lines.push(`| ${e + 1} | ${gs.map((g) => numStat(stat(g.runs.map((r) => r.epochs[e]![key])))).join(' | ')} |`);
  return lines.join('\n');
}

/** The authors' table (notebook outputs of their repository: 0.2 of CIFAR-10, LeNet, Adam 0.002; test accuracy). */
export const AUTHORS: Record<number, Record<Norm, number>> = {
  25: { bln: 0.455, bn: 0.453, ln: 0.423 },
  1: { bln: 0.442, bn: 0.109, ln: 0.378 },
};

/** Ours beside the authors': test accuracy of the best-validation-loss checkpoint (mean ± sd over seeds). */
export function authorsTable(runs: RunResult[]): string {
  const lines = [
    '| batch | BLN, best inference config: ours / authors | BLN, default inference: ours | BN: ours / authors | LN: ours / authors |',
    '|---:|---:|---:|---:|---:|',
  ];
  const gs = groups(runs);
  for (const b of [...new Set(runs.map((r) => r.batchSize))]) {
    const get = (n: Norm) => gs.find((g) => g.norm === n && g.batchSize === b);
    const cell = (n: Norm, f: (r: RunResult) => number | undefined) => {
      const g = get(n);
      const v = g?.runs.map(f).filter((x): x is number => x !== undefined);
      return v && v.length ? pctStat(stat(v)) : '–';
    };
    const a = (n: Norm) => (AUTHORS[b] ? pct(AUTHORS[b]![n]) : '–');
    lines.push(
      `| ${b} | ${cell('bln', (r) => r.testBest?.acc)} / ${a('bln')} | ${cell('bln', (r) => r.testAtBest.acc)} | ${cell('bn', (r) => r.testAtBest.acc)} / ${a('bn')} | ${cell('ln', (r) => r.testAtBest.acc)} / ${a('ln')} |`,
    );
  }
  return lines.join('\n');
}

/** The four questions of the comparison, answered from the numbers (no judgement beyond the thresholds stated). */
export function findings(runs: RunResult[]): string[] {
  const gs = groups(runs);
  const get = (n: Norm, b: number) => gs.find((g) => g.norm === n && g.batchSize === b);
  const acc = (g: Group | undefined, f: (r: RunResult) => number | undefined = (r) => r.testAtBest.acc) => (g ? stat(g.runs.map(f).filter((x): x is number => x !== undefined)) : null);
  const pp = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)} points`;
  const out: string[] = [];
  const bn1 = acc(get('bn', 1));
  if (bn1) out.push(`BatchNorm at batch 1: ${pctStat(bn1)} test accuracy (chance is 10%): ${bn1.mean < 0.2 ? `collapsed, as in the paper (${pct(AUTHORS[1]!.bn)})` : `did not collapse (the paper: ${pct(AUTHORS[1]!.bn)})`}.`);
  const bln1 = acc(get('bln', 1));
  const bln1g = acc(get('bln', 1), (r) => r.testBest?.acc);
  const ln1 = acc(get('ln', 1));
  if (bln1 && ln1)
    out.push(
      `Batch 1, BLN vs LayerNorm: ${pctStat(bln1)} (default inference; ${bln1g ? pctStat(bln1g) : '–'} with the configuration chosen on validation) vs ${pctStat(ln1)}: ` +
        `${pp(bln1.mean - ln1.mean)} (${bln1g ? pp(bln1g.mean - ln1.mean) : '–'}); the paper: ${pp(AUTHORS[1]!.bln - AUTHORS[1]!.ln)} (${pct(AUTHORS[1]!.bln)} vs ${pct(AUTHORS[1]!.ln)}).`,
    );
  const b = 25;
  const trio = (['bln', 'bn', 'ln'] as Norm[]).map((n) => get(n, b)).filter((g): g is Group => !!g);
  if (trio.length === 3) {
    const n = Math.min(...trio.flatMap((g) => g.runs.map((r) => r.epochs.length)));
    const mean = (g: Group, e: number) => stat(g.runs.map((r) => r.epochs[e]!.trainLoss)).mean;
    const lowest = Array.from({ length: n }, (_, e) => trio.reduce((a, g) => (mean(g, e) < mean(a, e) ? g : a)));
    const counts = trio.map((g) => `${NORM_NAMES[g.norm]} ${lowest.filter((x) => x === g).length}`).join(', ');
    out.push(`Batch ${b}, training loss per epoch (mean over seeds): lowest in ${n} epochs: ${counts}.`);
    out.push(`Batch ${b}, epoch of the lowest validation loss per seed: ${trio.map((g) => `${NORM_NAMES[g.norm]} ${g.runs.map((r) => r.bestEpoch).join(', ')}`).join('; ')}.`);
    const a = trio.map((g) => ({ g, s: acc(g)! }));
    const sds = a.map((x) => x.s.sd).filter((v) => Number.isFinite(v));
    const spread = sds.length ? Math.max(...sds) : NaN;
    const pairs: string[] = [];
    for (let i = 0; i < a.length; i++)
      for (let j = i + 1; j < a.length; j++) pairs.push(`${NORM_NAMES[a[i]!.g.norm]} − ${NORM_NAMES[a[j]!.g.norm]} ${pp(a[i]!.s.mean - a[j]!.s.mean)}`);
    out.push(
      `Batch ${b}, test accuracy of the best checkpoints: ${a.map((x) => `${NORM_NAMES[x.g.norm]} ${pctStat(x.s)}`).join(', ')}; differences of the means: ${pairs.join(', ')}; ` +
        (Number.isFinite(spread) ? `largest seed-to-seed sd ${(100 * spread).toFixed(2)} points.` : 'one seed: no spread measured.'),
    );
  }
  return out;
}

export function markdown(inp: ReportInput, figureFile: string | null): string {
  const out: string[] = [];
  const batches = [...new Set(inp.runs.map((r) => r.batchSize))];
  out.push("# Batch Layer Normalization vs BatchNorm vs LayerNorm: the paper's CNN on MNIST", '');
  out.push('Produced by `npm run demo` (bench/paper/main.ts); tfjs layers, BLN through `batch-layer-norm/tfjs`.', '');
  out.push(`Command: \`${inp.command}\`  `, `Environment: ${inp.environment}  `, `Wall time: ${inp.wallSeconds.toFixed(0)} s`, '');
  out.push('## Settings', '', '| setting | value |', '|---|---|');
  for (const [k, v] of Object.entries(inp.settings)) out.push(`| ${k} | ${v} |`);
  out.push('', '## Against the authors\' table', '');
  out.push(
    'Test accuracy of the best-validation-loss checkpoint (mean ± sample sd over seeds where more than one ran). The authors\' figures are ' +
      'CIFAR-10 (0.2 of it), ours MNIST: compare the pattern, not the levels. Their BLN figure is the best of the 16 inference ' +
      'configurations ranked on the test set; ours is ranked on the validation set and then measured on the test set.',
    '',
  );
  out.push(authorsTable(inp.runs), '');
  for (const f of findings(inp.runs)) out.push(`- ${f}`);
  out.push('');
  out.push('## Summary over seeds', '', seedTable(inp.runs), '');
  for (const b of batches) {
    out.push(`### Batch ${b}: training loss per epoch (mean ± sd over seeds)`, '', lossPerEpochTable(inp.runs, b, 'trainLoss'), '');
    out.push(`### Batch ${b}: validation loss per epoch`, '', lossPerEpochTable(inp.runs, b, 'valLoss'), '');
  }
  out.push('## Every run', '', summaryTable(inp.runs), '');
  out.push(
    'Train loss/accuracy are averages over the epoch\'s training steps (training mode); validation and test are evaluated in ' +
      'inference mode, BLN at its training batch size (BatchNorm and LayerNorm do not depend on the evaluation batch: ' +
      'they are evaluated in batches of 500). For BLN the default inference uses mini-batch statistics (all four flags false); ' +
      '"best inference config" is the configuration the 16-way search ranked first by loss on the validation set (on the ' +
      'best-validation-loss checkpoint), applied to the test set.',
  );
  if (figureFile) out.push('', `![loss per epoch, and BLN's inference configurations](${figureFile})`);
  for (const r of inp.runs) {
    out.push('', `## ${NORM_NAMES[r.norm]}, batch ${r.batchSize}, seed ${r.seed}`, '', epochTable(r), '');
    out.push(`Test after the last epoch: loss ${f4(r.test.loss)}, accuracy ${pct(r.test.acc)}. Best epoch by validation loss: ${r.bestEpoch}; its test: loss ${f4(r.testAtBest.loss)}, accuracy ${pct(r.testAtBest.acc)}.`);
    if (r.grid) {
      out.push('', 'Inference configurations on the validation set, best-validation-loss checkpoint (pop = population statistic, batch = the mini-batch at hand), best first:', '');
      out.push(gridTable(r.grid));
      if (r.testBest) out.push('', `Test with the best configuration (${useLabel(r.grid[0]!.use)}): loss ${f4(r.testBest.loss)}, accuracy ${pct(r.testBest.acc)}.`);
    }
  }
  out.push('');
  return out.join('\n');
}
