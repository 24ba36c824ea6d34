// The fuzz cases of the call entry points (test/fuzz.test.ts): for forward, backward and infer,
// the arbitrary that draws a case (a shape, data and which arguments to mutate how) and the
// spec that builds its arguments and checks its results against the float64 reference.
import fc from 'fast-check';

import * as bln from '../lib';
import { seedArb } from './arbitraries';
import { dimsOf, makeData, mutArb, optionsArg, optSpecArb, pick, R, rare, shapeArg, smallShapeArb, T, type OptSpec, type Want } from './fuzz-inputs';
import { count, expectMeanClose, outObject, outSlot, passesOut, tensorSlot, Tracker, unrepresentable, type Built, type CaseSpec } from './fuzz-runner';
import { allUses, expectClose, randomPop, refBackward, refForward, refInfer } from './reference';

// ------------------------------------------------------------------ forward

export interface FwdCase {
  shape: number[];
  seed: number;
  x: number;
  gamma: number;
  beta: number;
  shapeMut: number;
  opt: OptSpec;
  out: number[]; // y, batchMean, batchVar, featureMean, featureVar
  special: number; // overlaps, adjacency, unknown out key, out not an object
}

const STAT_KEYS = bln.STAT_KEYS;
const FWD_OUT = ['y', ...STAT_KEYS] as const;

export function forwardSpec(c: FwdCase): CaseSpec<bln.ForwardResult> {
  const { B, C, M, n } = dimsOf(c.shape);
  const { x0, g0, b0 } = makeData(c.seed, c.shape);
  const lens: Record<string, number> = { y: n, batchMean: M * C, batchVar: M * C, featureMean: B * M, featureVar: B * M };
  const build = (): Built => {
    const tr = new Tracker();
    const wants: Want[] = [];
    const sp = c.special < 0 ? -1 : c.special % 6;
    let x = tensorSlot(tr, wants, 'x', x0, sp === 0 || sp === 3 ? -1 : c.x);
    let gamma = tensorSlot(tr, wants, 'gamma', g0, sp === 1 ? -1 : c.gamma);
    const beta = tensorSlot(tr, wants, 'beta', b0, c.beta);
    const outWants: Want[] = [];
    const overridden = [['y'], ['batchMean'], ['featureMean', 'featureVar'], ['y']][sp] ?? [];
    const { outObj, outs } = outObject(tr, outWants, FWD_OUT, lens, c.out, (key) => overridden.includes(key));
    let outArg: unknown = outObj;
    if (sp === 0) {
      // out.y overlaps x by one element
      const big = new Float32Array(2 * n);
      const xv = big.subarray(0, n);
      xv.set(x0);
      x = xv;
      outObj.y = big.subarray(n - 1, 2 * n - 1);
      outWants.push(R('out.y'));
    } else if (sp === 1) {
      // out.batchMean overlaps gamma
      const big = new Float32Array(M * C + C);
      const gv = big.subarray(M * C, M * C + C);
      gv.set(g0);
      gamma = gv;
      outObj.batchMean = big.subarray(C, C + M * C);
      outWants.push(R('out.batchMean'));
    } else if (sp === 2) {
      const f = new Float32Array(B * M).fill(NaN);
      outObj.featureMean = f;
      outObj.featureVar = f;
      outWants.push(R('out.featureMean', 'out.featureVar'));
    } else if (sp === 3) {
      // x and out.y adjacent in one buffer: valid
      const big = new Float32Array(2 * n).fill(NaN);
      const xv = big.subarray(0, n);
      xv.set(x0);
      x = tr.input('x', { v: xv, guardOk: () => true });
      outObj.y = big.subarray(n, 2 * n);
    } else if (sp === 4) {
      outObj.dx = new Float32Array(n);
      outWants.push(T('dx'));
    } else if (sp === 5) {
      outArg = pick([3, 'y', [new Float32Array(n)], new Float32Array(n)], c.special);
      outWants.push(T('options.out'));
    }
    for (const k of FWD_OUT) if (outs[k] !== outObj[k]) delete outs[k];
    if (sp === 3) outs.y = outObj.y as Float32Array;
    const hasOut = Object.keys(outObj).length > 0 || sp === 5;
    const { options, eps, N } = optionsArg(wants, c.opt, outArg, hasOut, outWants);
    const shape = shapeArg(wants, c.shape, c.shapeMut);
    const passedOut = passesOut(options, outObj);
    return { args: [x, shape, gamma, beta, options], wants, checkUntouched: (l) => tr.check(l), outs: passedOut ? outs : {}, eps, N };
  };
  return {
    prop: 'forward',
    build,
    run: (a) => (bln.forward as (...z: unknown[]) => bln.ForwardResult)(...a),
    runAsync: (a) => (bln.forwardAsync as (...z: unknown[]) => Promise<bln.ForwardResult>)(...a),
    arrays: (r) => ({ y: r.y, ...r.stats }),
    checkRef: (r, b, label) => {
      const ref = refForward(x0, c.shape, g0, b0, b.eps, b.N ?? B);
      if (unrepresentable(ref.y)) return void count('forward', 'of which beyond float32 range (sync = async only)');
      expectClose(r.y, ref.y, 1e-5, `${label} y`);
      expectClose(r.stats.batchVar, ref.stats.batchVar, 1e-5, `${label} batchVar`);
      expectClose(r.stats.featureVar, ref.stats.featureVar, 1e-5, `${label} featureVar`);
      // a mean's error scales with the spread it was taken over (a mean that cancels to ~0
      // has no relative accuracy): ||got - ref|| <= 1e-5 (||ref|| + ||sqrt(var)||)
      expectMeanClose(r.stats.batchMean, ref.stats.batchMean, ref.stats.batchVar, `${label} batchMean`);
      expectMeanClose(r.stats.featureMean, ref.stats.featureMean, ref.stats.featureVar, `${label} featureMean`);
    },
  };
}

export const fwdCaseArb: fc.Arbitrary<FwdCase> = fc.record({
  shape: smallShapeArb,
  seed: seedArb,
  x: mutArb,
  gamma: mutArb,
  beta: mutArb,
  shapeMut: rare(8),
  opt: optSpecArb,
  out: fc.array(rare(2), { minLength: 5, maxLength: 5 }),
  special: rare(6),
});

// ------------------------------------------------------------------ backward

export interface BwdCase {
  shape: number[];
  seed: number;
  dy: number;
  x: number;
  gamma: number;
  stats: number[]; // per key
  statsWhole: number;
  shapeMut: number;
  opt: OptSpec;
  out: number[]; // dx, dgamma, dbeta
  special: number;
}
const BAD_OBJECTS: [string, unknown][] = [['null', null], ['a number', 7], ['a string', 'stats'], ['an array', []], ['a Float32Array', new Float32Array(4)]];

export function backwardSpec(c: BwdCase): CaseSpec<bln.BackwardResult> {
  const { B, C, n } = dimsOf(c.shape);
  const { x0, g0, b0, dy0 } = makeData(c.seed, c.shape);
  const stats0 = bln.forward(x0, c.shape, g0, b0).stats;
  const lens: Record<string, number> = { dx: n, dgamma: C, dbeta: C };
  const build = (): Built => {
    const tr = new Tracker();
    const wants: Want[] = [];
    const sp = c.special < 0 ? -1 : c.special % 3;
    const dy = tensorSlot(tr, wants, 'dy', dy0, sp === 0 ? -1 : c.dy);
    const x = tensorSlot(tr, wants, 'x', x0, c.x);
    const gamma = tensorSlot(tr, wants, 'gamma', g0, sp === 1 ? -1 : c.gamma);
    let stats: unknown;
    if (c.statsWhole >= 0) {
      stats = pick(BAD_OBJECTS, c.statsWhole)[1];
      wants.push(T('stats'));
    } else {
      const s: Record<string, unknown> = {};
      STAT_KEYS.forEach((k, i) => (s[k] = tensorSlot(tr, wants, `stats.${k}`, stats0[k], c.stats[i]!)));
      stats = s;
    }
    const outWants: Want[] = [];
    const { outObj, outs } = outObject(tr, outWants, ['dx', 'dgamma', 'dbeta'], lens, c.out, (key) => (sp === 0 && key === 'dx') || (sp === 1 && key === 'dgamma'));
    if (sp === 0) {
      outObj.dx = dy; // in place: not allowed
      outWants.push(R('out.dx'));
    } else if (sp === 1) {
      outObj.dgamma = gamma;
      outWants.push(R('out.dgamma'), T('gamma'), R('gamma'));
    } else if (sp === 2) {
      outObj.y = new Float32Array(n);
      outWants.push(T('y'));
    }
    const hasOut = Object.keys(outObj).length > 0;
    const { options, eps, N } = optionsArg(wants, c.opt, outObj, hasOut, outWants);
    const shape = shapeArg(wants, c.shape, c.shapeMut);
    const passedOut = passesOut(options, outObj);
    return { args: [dy, x, shape, gamma, stats, options], wants, checkUntouched: (l) => tr.check(l), outs: passedOut ? outs : {}, eps, N };
  };
  return {
    prop: 'backward',
    build,
    run: (a) => (bln.backward as (...z: unknown[]) => bln.BackwardResult)(...a),
    runAsync: (a) => (bln.backwardAsync as (...z: unknown[]) => Promise<bln.BackwardResult>)(...a),
    arrays: (r) => ({ dx: r.dx, dgamma: r.dgamma, dbeta: r.dbeta }),
    checkRef: (r, b, label) => {
      // the gradient of shapes with B or C <= 2 is ill-conditioned in float32 (backward.test.ts)
      if (B < 3 || C < 3) return;
      const ref = refBackward(dy0, x0, c.shape, g0, b.eps, b.N ?? B);
      if (unrepresentable(ref.dx)) return void count('backward', 'of which beyond float32 range (sync = async only)');
      expectClose(r.dx, ref.dx, 1e-4, `${label} dx`);
      expectClose(r.dgamma, ref.dgamma, 1e-4, `${label} dgamma`);
      expectClose(r.dbeta, ref.dbeta, 1e-4, `${label} dbeta`);
    },
  };
}

export const bwdCaseArb: fc.Arbitrary<BwdCase> = fc.record({
  shape: smallShapeArb,
  seed: seedArb,
  dy: mutArb,
  x: mutArb,
  gamma: mutArb,
  stats: fc.array(rare(14), { minLength: 4, maxLength: 4 }),
  statsWhole: rare(30),
  shapeMut: rare(10),
  opt: optSpecArb,
  out: fc.array(rare(2), { minLength: 3, maxLength: 3 }),
  special: rare(12),
});

// ------------------------------------------------------------------ infer

export interface InfCase {
  shape: number[];
  seed: number;
  x: number;
  gamma: number;
  beta: number;
  pop: number[];
  popWhole: number;
  use: number; // 0..15 valid; else a mutation
  useMut: number;
  shapeMut: number;
  opt: OptSpec;
  out: number;
  special: number;
}
const USE_BAD: [string, (u: bln.InferUse) => unknown, Want][] = [
  ['null', () => null, T('use')],
  ['a number', () => 15, T('use')],
  ['an array', () => [true], T('use')],
  ['a string flag', (u) => ({ ...u, batchMean: 'yes' }), T('use.batchMean')],
  ['a number flag', (u) => ({ ...u, featureVar: 1 }), T('use.featureVar')],
  ['an unknown key', (u) => ({ ...u, featureStd: true }), T('featureStd')],
  ['a null flag (false)', (u) => ({ ...u, batchVar: null }), undefined as unknown as Want],
];

export function inferSpec(c: InfCase): CaseSpec<{ y: Float32Array }> {
  const { B, M, n } = dimsOf(c.shape);
  const { rng, x0, g0, b0 } = makeData(c.seed, c.shape);
  const pop0 = randomPop(rng, c.shape);
  const use0 = allUses()[c.use % 16]!;
  const build = (): Built => {
    const tr = new Tracker();
    const wants: Want[] = [];
    const sp = c.special < 0 ? -1 : c.special % 3;
    const x = tensorSlot(tr, wants, 'x', x0, sp === 0 ? -1 : c.x);
    const gamma = tensorSlot(tr, wants, 'gamma', g0, c.gamma);
    const beta = tensorSlot(tr, wants, 'beta', b0, c.beta);
    let population: unknown;
    if (c.popWhole >= 0) {
      population = pick(BAD_OBJECTS, c.popWhole)[1];
      wants.push(T('population'));
    } else {
      const p: Record<string, unknown> = {};
      STAT_KEYS.forEach((k, i) => (p[k] = tensorSlot(tr, wants, `population.${k}`, pop0[k], sp === 1 && k === 'featureVar' ? -1 : c.pop[i]!)));
      population = p;
    }
    let use: unknown = use0;
    let useValue = use0;
    if (c.useMut >= 0) {
      const [label, make, want] = pick(USE_BAD, c.useMut);
      use = make(use0);
      if (want) wants.push(want);
      if (label === 'a null flag (false)') useValue = { ...use0, batchVar: false };
    }
    const outWants: Want[] = [];
    let out: unknown;
    let hasOut = false;
    const outs: Record<string, Float32Array> = {};
    if (sp === 0) {
      out = x;
      hasOut = true;
      outWants.push(R('options.out'));
    } else if (sp === 1 && population && typeof population === 'object') {
      // out overlapping population.featureVar
      const big = new Float32Array(n + M);
      const fv = big.subarray(n - 1, n - 1 + M);
      fv.set(pop0.featureVar);
      (population as Record<string, unknown>).featureVar = fv;
      out = big.subarray(0, n);
      hasOut = true;
      outWants.push(R('options.out'));
    } else if (sp === 2) {
      out = { y: new Float32Array(n) };
      hasOut = true;
      outWants.push(T('options.out'));
    } else {
      const r = outSlot(tr, outWants, 'options.out', n, c.out);
      out = r.v;
      hasOut = r.given;
      if (r.v instanceof Float32Array && tr.has(r.v)) outs.y = r.v;
    }
    const { options, eps, N } = optionsArg(wants, c.opt, out, hasOut, outWants);
    const shape = shapeArg(wants, c.shape, c.shapeMut);
    const passedOut = passesOut(options, out);
    return { args: [x, shape, gamma, beta, population, use, options], wants, checkUntouched: (l) => tr.check(l), outs: passedOut ? outs : {}, eps, N, use: useValue } as Built;
  };
  return {
    prop: 'infer',
    build,
    run: (a) => ({ y: (bln.infer as (...z: unknown[]) => Float32Array)(...a) }),
    runAsync: async (a) => ({ y: await (bln.inferAsync as (...z: unknown[]) => Promise<Float32Array>)(...a) }),
    arrays: (r) => ({ y: r.y }),
    checkRef: (r, b, label) => {
      const use = (b as Built & { use: bln.InferUse }).use;
      const ref = refInfer(x0, c.shape, g0, b0, pop0, use, b.eps, b.N ?? B);
      if (unrepresentable(ref)) return void count('infer', 'of which beyond float32 range (sync = async only)');
      expectClose(r.y, ref, 1e-5, `${label} y`);
    },
  };
}

export const infCaseArb: fc.Arbitrary<InfCase> = fc.record({
  shape: smallShapeArb,
  seed: seedArb,
  x: mutArb,
  gamma: mutArb,
  beta: mutArb,
  pop: fc.array(rare(14), { minLength: 4, maxLength: 4 }),
  popWhole: rare(30),
  use: fc.nat(15),
  useMut: rare(12),
  shapeMut: rare(10),
  opt: optSpecArb,
  out: rare(2),
  special: rare(12),
});
