// The demo's report: Markdown tables and an SVG figure drawn by vega + vega-lite in Node
// (renderer 'none' + toSVG: no canvas, no browser).
import { renderVegaLite } from '../lib/vega';
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
  epochs: EpochRow[];
  /** Test loss/accuracy with the default inference (BLN: all flags false, i.e. mini-batch statistics). */
  test: { loss: number; acc: number };
  /** BLN only: the 16 configurations on the validation set, best first, and the test score of the best. */
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

function runTitle(r: RunResult): string {
  return `${NORM_NAMES[r.norm]}, batch ${r.batchSize}`;
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
    '| norm | batch | final train loss | final train acc | final val loss | final val acc | test acc | test acc, best inference config | train time |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of runs) {
    const last = r.epochs[r.epochs.length - 1]!;
    const best = r.testBest && r.grid ? `${pct(r.testBest.acc)} (${useLabel(r.grid[0]!.use)})` : '–';
    lines.push(
      `| ${NORM_NAMES[r.norm]} | ${r.batchSize} | ${f4(last.trainLoss)} | ${pct(last.trainAcc)} | ${f4(last.valLoss)} | ${pct(last.valAcc)} | ${pct(r.test.acc)} | ${best} | ${r.trainSeconds.toFixed(0)} s |`,
    );
  }
  return lines.join('\n');
}

export function markdown(inp: ReportInput, figureFile: string | null): string {
  const out: string[] = [];
  out.push('# Batch Layer Normalization vs BatchNorm vs LayerNorm: the paper\'s CNN on MNIST');
  out.push('');
  out.push('Produced by `npm run demo` (bench/paper/main.ts); tfjs layers, BLN through `batch-layer-norm/tfjs`.');
  out.push('');
  out.push(`Command: \`${inp.command}\`  `);
  out.push(`Environment: ${inp.environment}  `);
  out.push(`Wall time: ${inp.wallSeconds.toFixed(0)} s`);
  out.push('');
  out.push('## Settings');
  out.push('');
  out.push('| setting | value |');
  out.push('|---|---|');
  for (const [k, v] of Object.entries(inp.settings)) out.push(`| ${k} | ${v} |`);
  out.push('');
  out.push('## Summary');
  out.push('');
  out.push(summaryTable(inp.runs));
  out.push('');
  out.push(
    'Train loss/accuracy are averages over the epoch\'s training steps (training mode); validation and test are ' +
      'evaluated at the model\'s batch size in inference mode. For BLN the default inference uses mini-batch ' +
      'statistics (all four flags false); "best inference config" is the configuration the 16-way grid search ' +
      'ranked first on the validation set, applied to the test set.',
  );
  if (figureFile) {
    out.push('');
    out.push(`![loss and accuracy per epoch](${figureFile})`);
  }
  for (const r of inp.runs) {
    out.push('');
    out.push(`## ${runTitle(r)}`);
    out.push('');
    out.push(epochTable(r));
    out.push('');
    out.push(`Test: loss ${f4(r.test.loss)}, accuracy ${pct(r.test.acc)}.`);
    if (r.grid) {
      out.push('');
      out.push('Inference configurations on the validation set (pop = population statistic, batch = the mini-batch at hand), best first:');
      out.push('');
      out.push(gridTable(r.grid));
      if (r.testBest) out.push('', `Test with the best configuration (${useLabel(r.grid[0]!.use)}): loss ${f4(r.testBest.loss)}, accuracy ${pct(r.testBest.acc)}.`);
    }
  }
  out.push('');
  return out.join('\n');
}

// ------------------------------------------------------------------ figure

export function figureSpec(runs: RunResult[]): Record<string, unknown> {
  const values: Record<string, string | number>[] = [];
  for (const r of runs)
    for (const e of r.epochs) {
      const common = { norm: NORM_NAMES[r.norm], batch: `batch ${r.batchSize}`, epoch: e.epoch };
      values.push({ ...common, metric: 'loss', split: 'train', value: e.trainLoss });
      values.push({ ...common, metric: 'loss', split: 'validation', value: e.valLoss });
      values.push({ ...common, metric: 'accuracy', split: 'train', value: e.trainAcc });
      values.push({ ...common, metric: 'accuracy', split: 'validation', value: e.valAcc });
    }
  const batches = [...new Set(runs.map((r) => `batch ${r.batchSize}`))];
  const panel = (metric: 'loss' | 'accuracy') => ({
    transform: [{ filter: { field: 'metric', equal: metric } }],
    facet: { column: { field: 'batch', type: 'nominal', sort: batches, title: null } },
    spec: {
      width: 300,
      height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
        y: {
          field: 'value',
          type: 'quantitative',
          // log loss: BatchNorm at batch 1 diverges and would flatten the others
          scale: metric === 'loss' ? { type: 'log', nice: false } : { zero: false },
          title: metric === 'loss' ? 'loss (log scale)' : 'accuracy',
        },
        color: { field: 'norm', type: 'nominal', title: 'normalization', sort: Object.values(NORM_NAMES) },
        strokeDash: {
          field: 'split',
          type: 'nominal',
          title: 'split',
          sort: ['train', 'validation'],
          legend: { symbolType: 'stroke', symbolStrokeColor: '#444', symbolStrokeWidth: 2, symbolSize: 300 },
        },
      },
    },
    resolve: { scale: { y: 'shared' } },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: "The paper's CNN on MNIST: loss and accuracy per epoch",
    data: { values },
    vconcat: [panel('loss'), panel('accuracy')],
  };
}

/** Renders the figure to an SVG string. */
export async function renderFigure(runs: RunResult[]): Promise<string> {
  return renderVegaLite(figureSpec(runs), (compiled) => {
    // With point marks on the lines vega-lite draws the dash legend's symbols without a stroke.
    const legends = (compiled.legends ?? []) as { strokeDash?: string; encode?: { symbols?: { update?: Record<string, unknown> } } }[];
    for (const l of legends)
      if (l.strokeDash && l.encode?.symbols?.update) Object.assign(l.encode.symbols.update, { stroke: { value: '#444' }, fill: { value: 'transparent' } });
  });
}
