// Per-call overhead at the paper's smallest shape, [25,84] (2,100 elements): the whole call,
// and the same native call with the arguments prepared once, so that the difference is the
// cost of lib's validation and output allocation.
import * as bln from '../lib';
import { DEVICE_CPU, native, type ForwardCall } from '../lib/addon';
import type { OverheadRow } from './lib/report';
import { now, perCallMicros, summarize } from './lib/timing';

const SHAPE = [25, 84];

export async function measureOverhead(quick: boolean): Promise<OverheadRow[]> {
  const [B, C] = SHAPE as [number, number];
  const n = B * C;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2);
  const dy = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11));
  const gamma = new Float32Array(C).fill(1);
  const beta = new Float32Array(C);
  const { stats } = bln.forward(x, SHAPE, gamma, beta);
  const pop = new bln.PopulationStats(SHAPE).update(stats).result();
  const use = { batchMean: true, batchVar: true, featureMean: true, featureVar: true };
  const out = { y: new Float32Array(n), batchMean: new Float32Array(C), batchVar: new Float32Array(C), featureMean: new Float32Array(B), featureVar: new Float32Array(B) };
  const bout = { dx: new Float32Array(n), dgamma: new Float32Array(C), dbeta: new Float32Array(C) };
  const dst = new Float32Array(n);
  const nat = native();
  const fwdArgs: ForwardCall = [x, B, 1, C, gamma, beta, 1e-3, B, DEVICE_CPU, out.y, out.batchMean, out.batchVar, out.featureMean, out.featureVar];
  const inner = quick ? 200 : 2000;
  const samples = quick ? 5 : 31;
  const rows: OverheadRow[] = [];
  const add = (call: string, fn: () => void, note: string) => {
    const s = perCallMicros(fn, inner, samples);
    rows.push({ call, us: s.ms, spread: s.spread, reps: s.reps * inner, note });
  };
  add('dst.set(x) (copy, for scale)', () => dst.set(x), 'the same 8.4 KB moved by a copy');
  add('native forward, arguments prepared', () => nat.forward(...fwdArgs), 'N-API argument parsing + kernel, no lib');
  add('forward(x, shape, gamma, beta, { out })', () => void bln.forward(x, SHAPE, gamma, beta, { out }), 'the public call with out buffers');
  add('forward(x, shape, gamma, beta)', () => void bln.forward(x, SHAPE, gamma, beta), 'allocates y and four statistics');
  add('backward(..., { out })', () => void bln.backward(dy, x, SHAPE, gamma, stats, { out: bout }), '');
  add('infer(..., population, all flags, { out })', () => void bln.infer(x, SHAPE, gamma, beta, pop, use, { out: out.y }), '');
  // async: sequential awaits, so this is the round trip through the libuv pool
  const asyncUs: number[] = [];
  const asyncInner = quick ? 50 : 500;
  for (let s = 0; s < samples; s++) {
    const t0 = now();
    for (let i = 0; i < asyncInner; i++) await bln.forwardAsync(x, SHAPE, gamma, beta, { out });
    asyncUs.push(((now() - t0) * 1000) / asyncInner);
  }
  const a = summarize(asyncUs);
  rows.push({ call: 'await forwardAsync(..., { out })', us: a.ms, spread: a.spread, reps: a.reps * asyncInner, note: 'one at a time: libuv pool round trip' });
  return rows;
}
