// `npm run demo`: the paper's experiment (Ziaee & Çano, arXiv 2209.08898) on MNIST.
// BLN vs tfjs batchNormalization vs layerNormalization in the paper's LeNet (tanh, Adam 0.002,
// epsilon 1e-3, N = the batch size), at batch 25 and batch 1, on the `mnist` package's 10,000
// digits, on tfjs-backend-wasm (XNNPACK convolutions; the filter gradient it lacks comes from
// registerWasmConvGradients()). Prints per-epoch lines, the summary and the comparison with the
// authors' table, and writes results.json, report.md and figure.svg to bench/results/paper/ (or --out).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { registerWasmConvGradients } from '../../lib/tfjs';
import { parseArgs, SPLIT, type Args } from './args';
import { loadMnist } from './data';
import { renderFigure } from './figure';
import { NORM_NAMES } from './model';
import { authorsTable, gridTable, markdown, seedTable, useLabel, type RunResult } from './report';
import { registerFastTileGradient } from './tile-grad';
import { Bars, runOne } from './train';

async function setBackend(name: string): Promise<void> {
  if (name === 'wasm') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-backend-wasm');
    registerWasmConvGradients();
  } else if (name === 'tensorflow') {
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

function describePlans(a: Args): string {
  return a.plans.map((p) => `batch ${p.batchSize}: ${p.train} training digits, ${p.epochs} epochs, ${p.seeds} seed${p.seeds > 1 ? 's' : ''}`).join('; ');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const wall0 = performance.now();
  const started = new Date().toISOString();
  // The cpu backend's "install tfjs-node" banner is printed unless in prod mode.
  tf.enableProdMode();
  // LayerNorm's gamma/beta go through Tile; tfjs-core's Tile gradient is one slice per repetition.
  registerFastTileGradient();
  await setBackend(a.backend);
  const maxTrain = Math.max(...a.plans.map((p) => p.train));
  const data = loadMnist({ train: maxTrain, val: a.val, test: a.test }, { val: SPLIT.val, test: SPLIT.test }, a.seed);
  const load = os.loadavg().map((l) => l.toFixed(2)).join(', ');
  const environment =
    `Node ${process.version}, tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, ` +
    `${os.cpus()[0]?.model?.trim() ?? os.arch()} x ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average at start ${load}`;
  console.log(`The paper's CNN on MNIST (${data.total} digits in the mnist package): ${a.val} validation / ${a.test} test digits; ${describePlans(a)}`);
  console.log(`norms: ${a.norms.map((n) => NORM_NAMES[n]).join(', ')}; Adam lr 0.002; ${environment}`);

  const bars = new Bars(a.progress);
  const runs: RunResult[] = [];
  try {
    for (const p of a.plans)
      for (let k = 0; k < p.seeds; k++)
        for (const norm of a.norms) {
          const r = await runOne({ norm, batchSize: p.batchSize, train: p.train, epochs: p.epochs, seed: a.seed + k }, data, bars);
          runs.push(r);
          const last = r.epochs[r.epochs.length - 1]!;
          bars.log(
            `${NORM_NAMES[norm]}, batch ${p.batchSize}, seed ${r.seed}: test acc ${(100 * r.test.acc).toFixed(2)}% (last epoch), ` +
              `${(100 * r.testAtBest.acc).toFixed(2)}% (best epoch ${r.bestEpoch})` +
              (r.testBest ? `, ${(100 * r.testBest.acc).toFixed(2)}% (best inference config: ${useLabel(r.grid![0]!.use)})` : '') +
              `; final train loss ${last.trainLoss.toFixed(4)}; train ${r.trainSeconds.toFixed(0)} s, evaluation ${r.evalSeconds.toFixed(0)} s`,
          );
        }
  } finally {
    bars.stop();
  }

  for (const r of runs.filter((x) => x.grid)) {
    console.log(`\nBLN, batch ${r.batchSize}, seed ${r.seed}: inference configurations on the validation set (best epoch's checkpoint), best first:`);
    console.log(gridTable(r.grid!));
  }
  console.log('\nSummary over seeds (test accuracy: mean ± sd where more than one seed)');
  console.log(seedTable(runs));
  console.log("\nAgainst the authors' table (their figures: CIFAR-10; test accuracy of the best-validation-loss checkpoint)");
  console.log(authorsTable(runs));

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
  const settings: Record<string, string | number> = {
    plans: describePlans(a),
    'validation digits': a.val,
    'test digits': a.test,
    model: 'LeNet: conv 6@5x5 tanh, avgpool, norm, conv 16@5x5 tanh, avgpool, norm, dense 120 tanh, norm, dense 84 tanh, norm, dense 10 softmax',
    optimizer: 'Adam, learning rate 0.002',
    'BLN epsilon, batchSize (N)': '1e-3, the training batch size',
    'data seed (split), first training seed': a.seed,
    started,
  };
  const command = `npm run demo${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  fs.writeFileSync(path.join(a.out, 'report.md'), markdown({ command, settings, runs, wallSeconds, environment }, figure));
  fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify({ command, settings, environment, loadAverageAtEnd: os.loadavg(), wallSeconds, runs }, null, 2) + '\n');
  console.log(`\nreport: ${path.join(a.out, 'report.md')}${figure ? `, figure: ${path.join(a.out, figure)}` : ''}`);
  console.log(`wall time ${wallSeconds.toFixed(0)} s (${(wallSeconds / 60).toFixed(1)} min)`);
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
