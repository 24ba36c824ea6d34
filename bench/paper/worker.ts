// A worker thread of the demo: sets up tfjs (backend, wasm filter gradient, Tile gradient),
// loads the digits once, then trains the runs it is sent, one at a time, reporting progress
// (throttled) and results to the main thread. The wasm backend is single-threaded, so the
// demo runs one worker per core (--jobs).
import { parentPort, workerData } from 'worker_threads';

import * as tf from '@tensorflow/tfjs';

import { registerWasmConvGradients } from '../../lib/tfjs';
import { loadMnist } from './data';
import { registerFastTileGradient } from './tile-grad';
import { runOne, type RunProgress, type RunSpec } from './train';

export interface WorkerSetup {
  backend: string;
  sizes: { train: number; val: number; test: number };
  split: { val: number; test: number };
  seed: number;
}

export type FromWorker =
  | { type: 'ready'; tfjs: string; backend: string; total: number }
  | { type: 'epoch'; id: number; label: string; total: number }
  | { type: 'tick'; id: number; n: number; phase: string; info: string }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string };

export type ToWorker = { id: number; spec: RunSpec } | { stop: true };

async function setBackend(name: string): Promise<void> {
  if (name === 'wasm') {
    require('@tensorflow/tfjs-backend-wasm');
    registerWasmConvGradients();
  } else if (name === 'tensorflow') {
    try {
      require('@tensorflow/tfjs-node');
    } catch (e) {
      throw new Error(`--backend tensorflow needs @tensorflow/tfjs-node: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend '${name}' could not be initialised`);
  await tf.ready();
}

async function serve(): Promise<void> {
  const port = parentPort!;
  const setup = workerData as WorkerSetup;
  const send = (m: FromWorker) => port.postMessage(m);
  // The cpu backend's "install tfjs-node" banner is printed unless in prod mode.
  tf.enableProdMode();
  // LayerNorm's gamma/beta go through Tile; tfjs-core's Tile gradient is one slice per repetition.
  registerFastTileGradient();
  await setBackend(setup.backend);
  const data = loadMnist(setup.sizes, setup.split, setup.seed);
  send({ type: 'ready', tfjs: tf.version.tfjs, backend: tf.getBackend(), total: data.total });
  port.on('message', async (msg: ToWorker) => {
    if ('stop' in msg) return port.close();
    const { id, spec } = msg;
    let pending = 0;
    let last = 0;
    const progress: RunProgress = {
      epoch: (label, total) => send({ type: 'epoch', id, label, total }),
      tick: async (n, phase, info) => {
        pending += n;
        const now = performance.now();
        if (now - last < 100) return;
        last = now;
        send({ type: 'tick', id, n: pending, phase, info });
        pending = 0;
        await new Promise((r) => setImmediate(r));
      },
      log: (line) => send({ type: 'log', id, line }),
    };
    try {
      const result = await runOne(spec, data, progress);
      send({ type: 'result', id, result });
    } catch (e) {
      send({ type: 'error', id, message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  });
}

serve().catch((e) => {
  parentPort!.postMessage({ type: 'error', id: -1, message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
