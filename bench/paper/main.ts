// `npm run demo`: the paper's experiment (Ziaee & Çano, arXiv 2209.08898, MNIST CNN).
// BLN vs tfjs batchNormalization vs layerNormalization in the same LeNet, Adam lr 0.002, at
// batch 25 and batch 1, on the `mnist` package's 10,000 digits. Prints per-epoch tables, the
// final test accuracy and the 16-configuration inference grid search of each BLN model, and
// writes a report (Markdown + SVG figure + JSON) to bench/results/paper/ (or --out).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';
import * as cliProgress from 'cli-progress';

import { blnCallback, searchInferenceConfig, setInferenceConfig, type InferUse } from '../../lib/tfjs';
import { disposeDataset, loadMnist, permutation, type Dataset } from './data';
import { buildCnn, NORM_NAMES, NORMS, type Norm } from './model';
import { epochTable, gridTable, markdown, renderFigure, summaryTable, useLabel, type EpochRow, type GridRow, type RunResult } from './report';

// The full split of the 10,000 digits; a default run takes prefixes of each part.
const FULL = { train: 7000, val: 1500, test: 1500, epochs: 10 };
// Default: sized to finish within 5 minutes on 2 cores with the tfjs cpu backend, whose pure-JS
// Conv2DBackpropFilter dominates (~55 ms per training digit at batch 25, ~80 ms at batch 1):
// measured 256 s on a 2-core AMD EPYC. --full runs the whole split (about 8 hours there).
const DEFAULT = { train: 200, val: 150, test: 500, epochs: 3 };

interface Args {
  train: number;
  val: number;
  test: number;
  epochs: number;
  batches: number[];
  norms: Norm[];
  out: string;
  seed: number;
  backend: string;
  progress: boolean;
  figure: boolean;
  full: boolean;
}

const USAGE = `Usage: npm run demo -- [options]

  --full            the whole split: ${FULL.train} train / ${FULL.val} validation / ${FULL.test} test digits, ${FULL.epochs} epochs
  --epochs N        epochs per model (default ${DEFAULT.epochs}; ${FULL.epochs} with --full)
  --train N         training digits (default ${DEFAULT.train}; at most ${FULL.train})
  --val N           validation digits (default ${DEFAULT.val}; at most ${FULL.val})
  --test N          test digits (default ${DEFAULT.test}; at most ${FULL.test})
  --batch 25,1      training batch sizes (default 25,1)
  --norms bln,bn,ln normalizations (default all three)
  --out DIR         report directory (default bench/results/paper)
  --seed N          data split, shuffles and initial weights (default 1)
  --backend NAME    tfjs backend: cpu (default) or tensorflow (needs @tensorflow/tfjs-node installed)
  --no-progress     no progress bars
  --no-figure       skip the SVG figure
`;

function parseArgs(argv: string[]): Args {
  const a: Args = {
    ...DEFAULT,
    batches: [25, 1],
    norms: [...NORMS],
    out: path.join('bench', 'results', 'paper'),
    seed: 1,
    backend: 'cpu',
    progress: true,
    figure: true,
    full: false,
  };
  const given = new Set<string>();
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 1) throw new RangeError(`--${name} needs a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    given.add(flag);
    switch (flag) {
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        process.exit(0);
      // falls through (exit)
      case '--full':
        a.full = true;
        break;
      case '--epochs':
        a.epochs = int('epochs', value());
        break;
      case '--train':
        a.train = int('train', value());
        break;
      case '--val':
        a.val = int('val', value());
        break;
      case '--test':
        a.test = int('test', value());
        break;
      case '--batch':
        a.batches = String(value()).split(',').map((s) => int('batch', s));
        break;
      case '--norms': {
        const list = String(value()).split(',');
        for (const n of list) if (!(NORMS as readonly string[]).includes(n)) throw new RangeError(`--norms: unknown '${n}' (bln, bn, ln)`);
        a.norms = list as Norm[];
        break;
      }
      case '--out':
        a.out = String(value());
        break;
      case '--seed':
        a.seed = int('seed', value());
        break;
      case '--backend':
        a.backend = String(value());
        break;
      case '--no-progress':
        a.progress = false;
        break;
      case '--no-figure':
        a.figure = false;
        break;
      default:
        throw new RangeError(`unknown option ${arg}\n\n${USAGE}`);
    }
  }
  if (a.full) {
    if (!given.has('--train')) a.train = FULL.train;
    if (!given.has('--val')) a.val = FULL.val;
    if (!given.has('--test')) a.test = FULL.test;
    if (!given.has('--epochs')) a.epochs = FULL.epochs;
  }
  return a;
}

async function setBackend(name: string): Promise<void> {
  if (name === 'tensorflow') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@tensorflow/tfjs-node');
    } catch (e) {
      throw new Error(`--backend tensorflow needs @tensorflow/tfjs-node: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend '${name}' could not be initialised`);
  await tf.ready();
}

async function evaluate(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, batchSize: number): Promise<{ loss: number; acc: number }> {
  const out = model.evaluate(x, y, { batchSize }) as tf.Scalar[];
  const [loss, acc] = await Promise.all(out.map(async (s) => (await s.data())[0]!));
  tf.dispose(out);
  return { loss: loss!, acc: acc! };
}

const isTTY = !!process.stderr.isTTY;

function bar(enabled: boolean): cliProgress.SingleBar | null {
  if (!enabled || !isTTY) return null;
  return new cliProgress.SingleBar(
    {
      format: '{title} |{bar}| {percentage}% | {phase} | loss {loss} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
}

async function runOne(norm: Norm, batchSize: number, data: Dataset, a: Args): Promise<RunResult> {
  const title = `${NORM_NAMES[norm].padEnd(14)} batch ${String(batchSize).padEnd(2)}`;
  const model = buildCnn(norm, batchSize, a.seed * 100);
  const steps = Math.ceil(data.train.n / batchSize);
  const b = bar(a.progress);
  b?.start(a.epochs * steps, 0, { title, phase: `epoch 1/${a.epochs}`, loss: '-' });
  const epochs: EpochRow[] = [];
  let trainSeconds = 0;
  let evalSeconds = 0;
  let done = 0;
  for (let e = 0; e < a.epochs; e++) {
    const t0 = performance.now();
    const phase = `epoch ${e + 1}/${a.epochs}`;
    // A fixed shuffle per epoch (model.fit's own shuffle is Math.random).
    const idx = tf.tensor1d(permutation(data.train.n, a.seed * 1000 + e), 'int32');
    const xs = tf.gather(data.train.x, idx);
    const ys = tf.gather(data.train.y, idx);
    idx.dispose();
    const progress = new tf.CustomCallback(
      {
        onBatchEnd: async (_batch, logs) => {
          done++;
          b?.update(done, { phase, loss: logs?.loss !== undefined ? Number(logs.loss).toFixed(3) : '-' });
        },
      },
      'never',
    );
    const callbacks: tf.CustomCallback[] = norm === 'bln' ? [blnCallback(), progress] : [progress];
    const h = await model.fit(xs, ys, { batchSize, epochs: 1, shuffle: false, verbose: 0, callbacks });
    tf.dispose([xs, ys]);
    const t1 = performance.now();
    b?.update(done, { phase: `${phase} validation`, loss: Number(h.history.loss![0]).toFixed(3) });
    const val = await evaluate(model, data.val.x, data.val.y, batchSize);
    const t2 = performance.now();
    trainSeconds += (t1 - t0) / 1000;
    evalSeconds += (t2 - t1) / 1000;
    const row: EpochRow = {
      epoch: e + 1,
      trainLoss: Number(h.history.loss![0]),
      trainAcc: Number((h.history.acc ?? h.history.accuracy)![0]),
      valLoss: val.loss,
      valAcc: val.acc,
      seconds: (t2 - t0) / 1000,
    };
    epochs.push(row);
    if (!b)
      console.log(
        `  ${title} epoch ${row.epoch}: train loss ${row.trainLoss.toFixed(4)} acc ${(100 * row.trainAcc).toFixed(2)}% | ` +
          `val loss ${row.valLoss.toFixed(4)} acc ${(100 * row.valAcc).toFixed(2)}% | ${row.seconds.toFixed(1)} s`,
      );
  }
  const t3 = performance.now();
  b?.update(done, { phase: 'test', loss: '-' });
  const test = await evaluate(model, data.test.x, data.test.y, batchSize);
  const result: RunResult = { norm, batchSize, epochs, test, trainSeconds, evalSeconds: 0 };
  if (norm === 'bln') {
    const ranked = await searchInferenceConfig(model, data.val.x, data.val.y, {
      batchSize,
      onProgress: (k, n) => b?.update(done, { phase: `grid search ${k}/${n}`, loss: '-' }),
    });
    result.grid = ranked.map((r): GridRow => ({ use: r.use, loss: r.loss, acc: r.metrics.acc ?? NaN }));
    const saved: InferUse = { batchMean: false, batchVar: false, featureMean: false, featureVar: false };
    setInferenceConfig(model, ranked[0]!.use);
    result.testBest = await evaluate(model, data.test.x, data.test.y, batchSize);
    setInferenceConfig(model, saved);
  }
  evalSeconds += (performance.now() - t3) / 1000;
  result.evalSeconds = evalSeconds;
  b?.stop();
  model.optimizer.dispose();
  model.dispose();
  return result;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const wall0 = performance.now();
  // The cpu backend's "install tfjs-node" banner is printed unless in prod mode.
  tf.enableProdMode();
  await setBackend(a.backend);
  const data = loadMnist({ train: a.train, val: a.val, test: a.test }, { val: FULL.val, test: FULL.test }, a.seed);
  const environment =
    `Node ${process.version}, tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, ` +
    `${os.cpus()[0]?.model?.trim() ?? os.arch()} x ${os.cpus().length}`;
  console.log(`The paper's CNN on MNIST (${data.total} digits in the mnist package): ${a.train} train / ${a.val} validation / ${a.test} test, ${a.epochs} epochs`);
  console.log(`norms: ${a.norms.map((n) => NORM_NAMES[n]).join(', ')}; batch sizes ${a.batches.join(', ')}; Adam lr 0.002; ${environment}`);
  if (!a.full) console.log('(a subset run: --full for the whole split, or --train/--val/--test/--epochs)');

  const runs: RunResult[] = [];
  for (const batchSize of a.batches)
    for (const norm of a.norms) {
      const r = await runOne(norm, batchSize, data, a);
      runs.push(r);
      console.log(`\n${NORM_NAMES[norm]}, batch ${batchSize} (train ${r.trainSeconds.toFixed(0)} s, evaluation ${r.evalSeconds.toFixed(0)} s)`);
      console.log(epochTable(r));
      console.log(`test: loss ${r.test.loss.toFixed(4)}, accuracy ${(100 * r.test.acc).toFixed(2)}%`);
      if (r.grid) {
        console.log('\ninference configurations on the validation set, best first (pop = population statistic):');
        console.log(gridTable(r.grid));
        console.log(`test with the best (${useLabel(r.grid[0]!.use)}): loss ${r.testBest!.loss.toFixed(4)}, accuracy ${(100 * r.testBest!.acc).toFixed(2)}%`);
      }
    }
  disposeDataset(data);

  console.log('\nSummary');
  console.log(summaryTable(runs));

  fs.mkdirSync(a.out, { recursive: true });
  let figure: string | null = null;
  if (a.figure) {
    try {
      fs.writeFileSync(path.join(a.out, 'figure.svg'), await renderFigure(runs));
      figure = 'figure.svg';
    } catch (e) {
      console.error(`figure not written: ${(e as Error).message}`);
    }
  }
  const wallSeconds = (performance.now() - wall0) / 1000;
  const settings = {
    'training digits': a.train,
    'validation digits': a.val,
    'test digits': a.test,
    epochs: a.epochs,
    'batch sizes': a.batches.join(', '),
    optimizer: 'Adam, learning rate 0.002',
    'BLN batchSize (N)': 'the training batch size',
    seed: a.seed,
  };
  const command = `npm run demo${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  fs.writeFileSync(path.join(a.out, 'report.md'), markdown({ command, settings, runs, wallSeconds, environment }, figure));
  fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify({ command, settings, environment, wallSeconds, runs }, null, 2) + '\n');
  console.log(`\nreport: ${path.join(a.out, 'report.md')}${figure ? `, figure: ${path.join(a.out, figure)}` : ''}`);
  console.log(`wall time ${wallSeconds.toFixed(0)} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
