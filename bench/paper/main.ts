// `npm run demo`: the paper's experiment (Ziaee & Çano, arXiv 2209.08898) on MNIST.
// BLN vs tfjs batchNormalization vs layerNormalization in the paper's LeNet (tanh, Adam 0.002,
// epsilon 1e-3, N = the batch size), at batch 25 and batch 1, on the `mnist` package's 10,000
// digits, on tfjs-backend-wasm (XNNPACK convolutions; the filter gradient it lacks comes from
// registerWasmConvGradients()). The runs are spread over worker threads (worker.ts, --jobs);
// each run's result does not depend on which worker trains it. Prints per-epoch lines, the
// summary and the comparison with the authors' table, and writes results.json, report.md and
// figure.svg to bench/results/paper/ (or --out).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';

import { parseArgs, SPLIT, type Args } from './args';
import { Bars, type RunBars } from './bars';
import { renderFigure } from './figure';
import { NORM_NAMES } from './model';
import { authorsTable, gridTable, markdown, seedTable, useLabel, type ReportInput, type RunResult } from './report';
import { runTotal, type RunSpec } from './train';
import type { FromWorker, ToWorker, WorkerSetup } from './worker';

function describePlans(a: Args): string {
  return a.plans.map((p) => `batch ${p.batchSize}: ${p.train} training digits, ${p.epochs} epochs, ${p.seeds} seed${p.seeds > 1 ? 's' : ''}`).join('; ');
}

/** Rough relative cost of a run, for longest-first scheduling (measured: LayerNorm steps cost ~1.5x, batch-1 steps ~1/4 of batch 25's). */
function cost(s: RunSpec): number {
  return s.epochs * s.train * (s.batchSize === 1 ? 1 : 0.2) * (s.norm === 'ln' ? 1.5 : 1);
}

interface Pool {
  info: { tfjs: string; backend: string; total: number };
  results: RunResult[];
}

/** Trains `specs` on `jobs` worker threads, longest first; results in the order of `specs`. */
async function trainAll(a: Args, specs: RunSpec[], bars: Bars): Promise<Pool> {
  const setup: WorkerSetup = {
    backend: a.backend,
    sizes: { train: Math.max(...a.plans.map((p) => p.train)), val: a.val, test: a.test },
    split: { val: SPLIT.val, test: SPLIT.test },
    seed: a.seed,
  };
  const queue = specs.map((spec, id) => ({ spec, id })).sort((x, y) => cost(y.spec) - cost(x.spec));
  const results: RunResult[] = new Array(specs.length);
  let info: Pool['info'] | null = null;
  const workerJs = path.join(__dirname, 'worker.js');
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = new Worker(workerJs, { workerData: setup });
      const runBars = new Map<number, RunBars>();
      const next = () => {
        const job = queue.shift();
        if (!job) {
          w.postMessage({ stop: true } satisfies ToWorker);
          return;
        }
        const title = `${NORM_NAMES[job.spec.norm]} b${job.spec.batchSize} s${job.spec.seed}`;
        runBars.set(job.id, bars.run(title, runTotal(job.spec, a.val, a.test)));
        w.postMessage({ id: job.id, spec: job.spec } satisfies ToWorker);
      };
      w.on('message', (m: FromWorker) => {
        const rb = 'id' in m ? runBars.get(m.id) : undefined;
        if (m.type === 'ready') {
          info = { tfjs: m.tfjs, backend: m.backend, total: m.total };
          next();
        } else if (m.type === 'epoch') rb?.epoch(m.label, m.total);
        else if (m.type === 'tick') rb?.tick(m.n, m.phase, m.info);
        else if (m.type === 'log') bars.log(m.line);
        else if (m.type === 'error') {
          w.terminate();
          reject(new Error(`worker: ${m.message}`));
        } else if (m.type === 'result') {
          const r = m.result as RunResult;
          results[m.id] = r;
          rb?.end();
          const last = r.epochs[r.epochs.length - 1]!;
          bars.log(
            `${NORM_NAMES[r.norm]}, batch ${r.batchSize}, seed ${r.seed}: test acc ${(100 * r.test.acc).toFixed(2)}% (last epoch), ` +
              `${(100 * r.testAtBest.acc).toFixed(2)}% (best epoch ${r.bestEpoch})` +
              (r.testBest ? `, ${(100 * r.testBest.acc).toFixed(2)}% (best inference config: ${useLabel(r.grid![0]!.use)})` : '') +
              `; final train loss ${last.trainLoss.toFixed(4)}; train ${r.trainSeconds.toFixed(0)} s, evaluation ${r.evalSeconds.toFixed(0)} s`,
          );
          next();
        }
      });
      w.on('error', reject);
      w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with code ${code}`))));
    });
  await Promise.all(Array.from({ length: Math.min(a.jobs, specs.length) }, one));
  return { info: info!, results };
}

/** results.json, report.md and figure.svg into a.out (the figure is rendered after wallSeconds is taken). */
async function writeReport(a: Args, inp: ReportInput, writeJson = true): Promise<void> {
  fs.mkdirSync(a.out, { recursive: true });
  let figure: string | null = null;
  if (a.figure) {
    try {
      fs.writeFileSync(path.join(a.out, 'figure.svg'), await renderFigure(inp.runs));
      figure = 'figure.svg';
    } catch (e) {
      console.error(`figure not written: ${(e as Error).message}`);
    }
  }
  fs.writeFileSync(path.join(a.out, 'report.md'), markdown(inp, figure));
  if (writeJson) fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify(inp, null, 2) + '\n');
  console.log(`\nreport: ${path.join(a.out, 'report.md')}${figure ? `, figure: ${path.join(a.out, figure)}` : ''}`);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.reportFrom) {
    const inp = JSON.parse(fs.readFileSync(a.reportFrom, 'utf8')) as ReportInput;
    await writeReport(a, inp, path.resolve(a.reportFrom) !== path.resolve(a.out, 'results.json'));
    return;
  }
  const wall0 = performance.now();
  const started = new Date().toISOString();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(', ');
  const specs: RunSpec[] = [];
  for (const p of a.plans)
    for (let k = 0; k < p.seeds; k++) for (const norm of a.norms) specs.push({ norm, batchSize: p.batchSize, train: p.train, epochs: p.epochs, seed: a.seed + k });
  console.log(`The paper's CNN on MNIST: ${a.val} validation / ${a.test} test digits; ${describePlans(a)}`);
  console.log(`norms: ${a.norms.map((n) => NORM_NAMES[n]).join(', ')}; Adam lr 0.002; ${specs.length} runs on ${Math.min(a.jobs, specs.length)} worker thread(s)`);
  const bars = new Bars(a.progress);
  let pool: Pool;
  try {
    pool = await trainAll(a, specs, bars);
  } finally {
    bars.stop();
  }
  const runs = pool.results;
  const environment =
    `Node ${process.version}, tfjs ${pool.info.tfjs}, backend ${pool.info.backend}, ${a.jobs} worker thread(s), ` +
    `${os.cpus()[0]?.model?.trim() ?? os.arch()} x ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average at start ${load}`;
  console.log(environment);

  for (const r of runs.filter((x) => x.grid)) {
    console.log(`\nBLN, batch ${r.batchSize}, seed ${r.seed}: inference configurations on the validation set (best epoch's checkpoint), best first:`);
    console.log(gridTable(r.grid!));
  }
  console.log('\nSummary over seeds (test accuracy: mean ± sd where more than one seed)');
  console.log(seedTable(runs));
  console.log("\nAgainst the authors' table (their figures: CIFAR-10; test accuracy of the best-validation-loss checkpoint)");
  console.log(authorsTable(runs));

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
    finished: new Date().toISOString(),
    'load average (1, 5, 15 min) at the end': os.loadavg().map((l) => l.toFixed(2)).join(', '),
  };
  const command = `npm run demo${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  await writeReport(a, { command, settings, environment, wallSeconds, runs });
  const total = (performance.now() - wall0) / 1000;
  console.log(`wall time ${total.toFixed(0)} s (${(total / 60).toFixed(1)} min; ${wallSeconds.toFixed(0)} s before the figure and report)`);
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
