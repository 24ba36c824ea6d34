// The demo's command line and its two plans: the default run (sized for at most 6 minutes on a
// 2-core machine on the wasm backend) and --full.
import * as os from 'os';
import * as path from 'path';

import { NORMS, type Norm } from './model';

/** What is trained at one batch size. Each seed gives its own initial weights and shuffles. */
export interface Plan {
  batchSize: number;
  train: number;
  epochs: number;
  seeds: number;
}

export interface Args {
  plans: Plan[];
  val: number;
  test: number;
  norms: Norm[];
  out: string;
  seed: number;
  backend: string;
  progress: boolean;
  figure: boolean;
  full: boolean;
  /** Worker threads training runs in parallel (the wasm backend is single-threaded). */
  jobs: number;
  /** Re-render report.md and figure.svg from this results.json instead of training. */
  reportFrom: string | null;
}

/** The whole split of the 10,000 digits. */
export const SPLIT = { train: 7000, val: 1500, test: 1500 };

const DEFAULT_PLANS: Plan[] = [
  { batchSize: 25, train: 7000, epochs: 10, seeds: 1 },
  { batchSize: 1, train: 2000, epochs: 5, seeds: 1 },
];
const FULL_PLANS: Plan[] = [
  { batchSize: 25, train: 7000, epochs: 10, seeds: 3 },
  { batchSize: 1, train: 7000, epochs: 10, seeds: 1 },
];

export const USAGE = `Usage: npm run demo -- [options]

  default           batch 25: ${SPLIT.train} training digits, 10 epochs; batch 1: 2,000 training digits, 5 epochs;
                    ${SPLIT.val} validation / ${SPLIT.test} test digits; one seed (about 5-6 minutes on 2 cores)
  --full            batch 25: 3 seeds (mean +- sd); batch 1: all ${SPLIT.train} training digits, 10 epochs
  --epochs N        epochs at every batch size
  --train N         training digits at every batch size (at most ${SPLIT.train})
  --seeds N         seeds at every batch size
  --val N           validation digits (default and at most ${SPLIT.val})
  --test N          test digits (default and at most ${SPLIT.test})
  --batch 25,1      training batch sizes (default 25,1; others take the batch-25 plan)
  --norms bln,bn,ln normalizations (default all three)
  --out DIR         report directory (default bench/results/paper/default, or .../full with --full)
  --seed N          the data split, and the first training seed (default 1)
  --jobs N          runs trained in parallel, one worker thread each (default: 2, or 1 on one core)
  --backend NAME    tfjs backend: wasm (default), cpu, or tensorflow (needs @tensorflow/tfjs-node)
  --no-progress     no progress bars
  --no-figure       skip the SVG figure
  --report FILE     no training: re-render report.md and figure.svg from a results.json (into --out)
`;

export function parseArgs(argv: string[]): Args {
  const a: Args = {
    plans: [],
    val: SPLIT.val,
    test: SPLIT.test,
    norms: [...NORMS],
    out: '',
    seed: 1,
    backend: 'wasm',
    progress: true,
    figure: true,
    full: false,
    jobs: Math.max(1, Math.min(2, os.cpus().length)),
    reportFrom: null,
  };
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 1) throw new RangeError(`--${name} needs a positive integer, got ${v}`);
    return n;
  };
  let batches = [25, 1];
  const over: Partial<Plan> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const [flag, inline] = eq >= 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
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
        over.epochs = int('epochs', value());
        break;
      case '--train':
        over.train = int('train', value());
        break;
      case '--seeds':
        over.seeds = int('seeds', value());
        break;
      case '--val':
        a.val = int('val', value());
        break;
      case '--test':
        a.test = int('test', value());
        break;
      case '--batch':
        batches = String(value()).split(',').map((s) => int('batch', s));
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
      case '--jobs':
        a.jobs = int('jobs', value());
        break;
      case '--report':
        a.reportFrom = String(value());
        break;
      case '--no-figure':
        a.figure = false;
        break;
      default:
        throw new RangeError(`unknown option ${arg}\n\n${USAGE}`);
    }
  }
  const base = a.full ? FULL_PLANS : DEFAULT_PLANS;
  if (!a.out) a.out = path.join('bench', 'results', 'paper', a.full ? 'full' : 'default');
  a.plans = batches.map((batchSize) => ({ ...(base.find((p) => p.batchSize === batchSize) ?? base[0]!), batchSize, ...over }));
  return a;
}
