// The demo's figure, drawn by vega + vega-lite in Node (renderer 'none' + toSVG: no canvas, no
// browser): training and validation loss per epoch for the three norms at each batch size
// (mean over seeds), and BLN's 16 inference configurations' validation accuracy.
import { renderVegaLite } from '../lib/vega';
import { NORM_NAMES } from './model';
import type { InferUse } from '../../lib/index';
import { groups, stat, type RunResult } from './report';

/** A short bar label: the statistics taken from the population (BM/BV batch mean/variance, FM/FV feature mean/variance). */
function shortLabel(u: InferUse): string {
  const names: [keyof InferUse, string][] = [['batchMean', 'BM'], ['batchVar', 'BV'], ['featureMean', 'FM'], ['featureVar', 'FV']];
  const on = names.filter(([k]) => u[k]).map(([, v]) => v);
  return on.length ? `pop ${on.join('+')}` : 'none (mini-batch)';
}

export function figureSpec(runs: RunResult[]): Record<string, unknown> {
  const loss: Record<string, string | number>[] = [];
  for (const g of groups(runs)) {
    const n = Math.min(...g.runs.map((r) => r.epochs.length));
    for (let e = 0; e < n; e++) {
      const common = { norm: NORM_NAMES[g.norm], batch: `batch ${g.batchSize}`, epoch: e + 1 };
      loss.push({ ...common, split: 'train', value: stat(g.runs.map((r) => r.epochs[e]!.trainLoss)).mean });
      loss.push({ ...common, split: 'validation', value: stat(g.runs.map((r) => r.epochs[e]!.valLoss)).mean });
    }
  }
  const grid: Record<string, string | number>[] = [];
  for (const g of groups(runs).filter((x) => x.norm === 'bln' && x.runs.every((r) => r.grid))) {
    const byLabel = new Map<string, number[]>();
    for (const r of g.runs) for (const row of r.grid!) byLabel.set(shortLabel(row.use), [...(byLabel.get(shortLabel(row.use)) ?? []), row.acc]);
    for (const [config, accs] of byLabel) grid.push({ batch: `batch ${g.batchSize}`, config, acc: stat(accs).mean });
  }
  const batches = [...new Set(runs.map((r) => `batch ${r.batchSize}`))];
  const lossPanel = {
    data: { values: loss },
    facet: { column: { field: 'batch', type: 'nominal', sort: batches, title: null } },
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
        // log scale: BatchNorm at batch 1 can blow up and would flatten the others
        y: { field: 'value', type: 'quantitative', scale: { type: 'log', nice: false }, title: 'loss (log scale)' },
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
    resolve: { scale: { y: 'independent' } },
  };
  const gridPanel = {
    data: { values: grid },
    facet: { column: { field: 'batch', type: 'nominal', sort: batches, title: 'BLN: the 16 inference configurations (pop = from the population; BM/BV batch mean/variance, FM/FV feature mean/variance)' } },
    spec: {
      width: 320,
      height: 260,
      encoding: {
        y: { field: 'config', type: 'nominal', sort: { field: 'acc', op: 'mean', order: 'descending' }, title: null },
        x: { field: 'acc', type: 'quantitative', title: 'validation accuracy (mean over seeds)', scale: { domain: [0, 1] }, axis: { format: '%' } },
      },
      layer: [
        { mark: { type: 'bar', color: '#4c78a8' } },
        { mark: { type: 'text', align: 'left', dx: 3, fontSize: 9 }, encoding: { text: { field: 'acc', type: 'quantitative', format: '.2%' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: "The paper's CNN on MNIST: loss per epoch (mean over seeds), and BLN's inference configurations",
    vconcat: grid.length ? [lossPanel, gridPanel] : [lossPanel],
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
