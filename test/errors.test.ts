// The spec's "Input rules", for forward, backward, infer (sync and async) and PopulationStats.
import * as bln from '../lib';
import { dims, expectClose, freshSeed, makeInputs, poisoned, refBackward, refForward, refInfer, Rng, ctx } from './reference';

type ErrorCtor = typeof Error | typeof TypeError | typeof RangeError;
type Entry = 'forward' | 'backward' | 'infer';

const SHAPE = [4, 3, 5];
const { B, M, C } = dims(SHAPE);
const SIZE = B * M * C;

const seed = freshSeed();
const rng = new Rng(seed);
const base = makeInputs(rng, SHAPE);
const baseStats = bln.forward(base.x, SHAPE, base.gamma, base.beta).stats;
const basePop: bln.Population = {
  batchMean: rng.normals(M * C),
  batchVar: rng.uniforms(M * C, 0.5, 2),
  featureMean: rng.normals(M),
  featureVar: rng.uniforms(M, 0.5, 2),
};
const baseUse: bln.InferUse = { batchMean: true, batchVar: false, featureMean: true, featureVar: false };

const cuda = bln.backendInfo().devices.find((d) => d.type === 'cuda');
const cudaAvailable = !!cuda?.available;

function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** "Expected X for NAME but received Z" */
const fmt = (name: string, received?: string) => new RegExp(`^Expected .+ for ${esc(name)} but received ${received ? esc(received) : '.+'}`);

// argument lists with overrides -------------------------------------------------
interface FwdArgs { x: unknown; shape: unknown; gamma: unknown; beta: unknown; options: unknown }
interface BwdArgs { dy: unknown; x: unknown; shape: unknown; gamma: unknown; stats: unknown; options: unknown }
interface InfArgs { x: unknown; shape: unknown; gamma: unknown; beta: unknown; population: unknown; use: unknown; options: unknown }

const fwd = (o: Partial<FwdArgs> = {}): unknown[] => {
  const a: FwdArgs = { x: base.x, shape: SHAPE, gamma: base.gamma, beta: base.beta, options: undefined, ...o };
  return [a.x, a.shape, a.gamma, a.beta, a.options];
};
const bwd = (o: Partial<BwdArgs> = {}): unknown[] => {
  const a: BwdArgs = { dy: base.dy, x: base.x, shape: SHAPE, gamma: base.gamma, stats: baseStats, options: undefined, ...o };
  return [a.dy, a.x, a.shape, a.gamma, a.stats, a.options];
};
const inf = (o: Partial<InfArgs> = {}): unknown[] => {
  const a: InfArgs = { x: base.x, shape: SHAPE, gamma: base.gamma, beta: base.beta, population: basePop, use: baseUse, options: undefined, ...o };
  return [a.x, a.shape, a.gamma, a.beta, a.population, a.use, a.options];
};
const args = { forward: fwd, backward: bwd, infer: inf };

interface Case {
  name: string;
  /** overrides for the argument builder of each entry point */
  make: (entry: Entry) => unknown[] | undefined;
  type: ErrorCtor;
  msg: RegExp;
}

const syncFns: Record<Entry, (...a: unknown[]) => unknown> = {
  forward: bln.forward as (...a: unknown[]) => unknown,
  backward: bln.backward as (...a: unknown[]) => unknown,
  infer: bln.infer as (...a: unknown[]) => unknown,
};
const asyncFns: Record<Entry, (...a: unknown[]) => Promise<unknown>> = {
  forward: bln.forwardAsync as (...a: unknown[]) => Promise<unknown>,
  backward: bln.backwardAsync as (...a: unknown[]) => Promise<unknown>,
  infer: bln.inferAsync as (...a: unknown[]) => Promise<unknown>,
};

function checkError(e: unknown, type: ErrorCtor, msg: RegExp, label: string): void {
  if (e === undefined) throw new Error(`${label}: no error`);
  if (!(e instanceof type) || (e as Error).name !== type.name)
    throw new Error(`${label}: expected ${type.name} but got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  if (!msg.test((e as Error).message)) throw new Error(`${label}: message ${JSON.stringify((e as Error).message)} does not match ${msg}`);
}

async function expectRejects(entry: Entry, a: unknown[], type: ErrorCtor, msg: RegExp, label: string): Promise<void> {
  let p: Promise<unknown> | undefined;
  expect(() => {
    p = asyncFns[entry](...a);
  }).not.toThrow();
  expect(p).toBeInstanceOf(Promise);
  const e = await p!.then(
    () => undefined,
    (err: unknown) => err,
  );
  checkError(e, type, msg, `${label} (async)`);
}

function expectThrows(entry: Entry, a: unknown[], type: ErrorCtor, msg: RegExp, label: string): void {
  let e: unknown;
  try {
    syncFns[entry](...a);
  } catch (err) {
    e = err;
  }
  checkError(e, type, msg, `${label} (sync)`);
}

/** A valid call of each entry point gives the right answer (the process is fine). */
async function stillWorks(): Promise<void> {
  const s = freshSeed();
  const r = new Rng(s);
  const shape = [6, 2, 9];
  const { x, gamma, beta, dy } = makeInputs(r, shape);
  const f = bln.forward(x, shape, gamma, beta);
  expectClose(f.y, refForward(x, shape, gamma, beta).y, 1e-5, `forward after errors ${ctx(s, shape)}`);
  const fa = await bln.forwardAsync(x, shape, gamma, beta);
  expectClose(fa.y, refForward(x, shape, gamma, beta).y, 1e-5, `forwardAsync after errors ${ctx(s, shape)}`);
  const b = await bln.backwardAsync(dy, x, shape, gamma, f.stats);
  expectClose(b.dx, refBackward(dy, x, shape, gamma).dx, 1e-4, `backwardAsync after errors ${ctx(s, shape)}`);
  const pop = { batchMean: r.normals(18), batchVar: r.uniforms(18, 0.5, 2), featureMean: r.normals(2), featureVar: r.uniforms(2, 0.5, 2) };
  const use = { batchMean: true, batchVar: true, featureMean: false, featureVar: true };
  expectClose(bln.infer(x, shape, gamma, beta, pop, use), refInfer(x, shape, gamma, beta, pop, use), 1e-5, `infer after errors ${ctx(s, shape)}`);
}

// the cases ---------------------------------------------------------------------

const ALL: Entry[] = ['forward', 'backward', 'infer'];
const on = (entries: Entry[], f: (e: Entry) => unknown[]) => (e: Entry) => (entries.includes(e) ? f(e) : undefined);

const wrongTypes: [string, unknown, string][] = [
  ['an Array', [1, 2, 3], 'an array of length 3'],
  ['a Float64Array', new Float64Array(SIZE), 'Float64Array(60)'],
  ['null', null, 'null'],
  ['a number', 3, '3'],
  ['undefined', undefined, 'undefined'],
  ['an Int32Array', new Int32Array(SIZE), 'Int32Array(60)'],
  ['a string', 'abc', '"abc"'],
];

const cases: Case[] = [];

// tensors: wrong types -> TypeError naming the argument
for (const [what, v, received] of wrongTypes) {
  cases.push({ name: `x is ${what}`, make: (e) => args[e]({ x: v }), type: TypeError, msg: fmt('x', received) });
  cases.push({ name: `gamma is ${what}`, make: (e) => args[e]({ gamma: v }), type: TypeError, msg: fmt('gamma', received) });
  cases.push({ name: `beta is ${what}`, make: on(['forward', 'infer'], (e) => args[e]({ beta: v })), type: TypeError, msg: fmt('beta', received) });
  cases.push({ name: `dy is ${what}`, make: on(['backward'], () => bwd({ dy: v })), type: TypeError, msg: fmt('dy', received) });
}
// tensors: wrong lengths -> RangeError naming the argument
cases.push(
  { name: 'x one element short', make: (e) => args[e]({ x: new Float32Array(SIZE - 1) }), type: RangeError, msg: /^Expected x of length 60 .*but received length 59/ },
  { name: 'x one element long', make: (e) => args[e]({ x: new Float32Array(SIZE + 1) }), type: RangeError, msg: /^Expected x of length 60 .*but received length 61/ },
  { name: 'dy one element short', make: on(['backward'], () => bwd({ dy: new Float32Array(SIZE - 1) })), type: RangeError, msg: /^Expected dy of length 60/ },
  { name: 'gamma of length C + 1', make: (e) => args[e]({ gamma: new Float32Array(C + 1) }), type: RangeError, msg: fmt('gamma', 'Float32Array(6)') },
  { name: 'gamma of length 0', make: (e) => args[e]({ gamma: new Float32Array(0) }), type: RangeError, msg: fmt('gamma') },
  { name: 'beta of length C - 1', make: on(['forward', 'infer'], (e) => args[e]({ beta: new Float32Array(C - 1) })), type: RangeError, msg: fmt('beta', 'Float32Array(4)') },
);
// detached buffers -> TypeError naming the argument
cases.push(
  { name: 'x detached', make: (e) => args[e]({ x: detached(SIZE) }), type: TypeError, msg: /^Expected Float32Array for x but received .*detached/ },
  { name: 'gamma detached', make: (e) => args[e]({ gamma: detached(C) }), type: TypeError, msg: /for gamma .*detached/ },
  { name: 'beta detached', make: on(['forward', 'infer'], (e) => args[e]({ beta: detached(C) })), type: TypeError, msg: /for beta .*detached/ },
  { name: 'dy detached', make: on(['backward'], () => bwd({ dy: detached(SIZE) })), type: TypeError, msg: /for dy .*detached/ },
  { name: 'stats.featureVar detached', make: on(['backward'], () => bwd({ stats: { ...baseStats, featureVar: detached(B * M) } })), type: TypeError, msg: /for stats\.featureVar .*detached/ },
  { name: 'population.batchVar detached', make: on(['infer'], () => inf({ population: { ...basePop, batchVar: detached(M * C) } })), type: TypeError, msg: /for population\.batchVar .*detached/ },
);
// shape
const shapeCases: [string, unknown, ErrorCtor, RegExp][] = [
  ['a string', '4,3,5', TypeError, fmt('shape')],
  ['null', null, TypeError, fmt('shape', 'null')],
  ['undefined', undefined, TypeError, fmt('shape', 'undefined')],
  ['an Int32Array', new Int32Array([4, 3, 5]), TypeError, fmt('shape')],
  ['an array-like object', { length: 2, 0: 12, 1: 5 }, TypeError, fmt('shape')],
  ['rank 1', [SIZE], RangeError, /rank >= 2.* for shape but received/],
  ['rank 0', [], RangeError, /rank >= 2.* for shape but received/],
  ['a zero dim', [4, 0, 5], RangeError, fmt('shape[1]', '0')],
  ['a zero batch', [0, 3, 5], RangeError, fmt('shape[0]', '0')],
  ['a zero C', [4, 15, 0], RangeError, fmt('shape[2]', '0')],
  ['a non-integer dim', [4, 1.5, 10], RangeError, fmt('shape[1]', '1.5')],
  ['a negative dim', [-4, -3, 5], RangeError, fmt('shape[0]', '-4')],
  ['a NaN dim', [4, NaN, 5], RangeError, fmt('shape[1]', 'NaN')],
  ['an Infinity dim', [4, Infinity, 5], RangeError, fmt('shape[1]', 'Infinity')],
  ['an unsafe integer dim', [4, 2 ** 60, 5], RangeError, fmt('shape[1]')],
  ['a string dim', ['4', 3, 5], TypeError, fmt('shape[0]', '"4"')],
  ['a null dim', [4, null, 5], TypeError, fmt('shape[1]', 'null')],
  ['a product that does not match x', [4, 3, 6], RangeError, /^Expected (x|dy) of length 72 \(the product of shape \[4, 3, 6\]\) but received length 60/],
  ['a product beyond the native index type', [2 ** 26, 2 ** 26, 2 ** 26], RangeError, /shape.*index type/],
];
for (const [what, shape, type, msg] of shapeCases) {
  // gamma of length C for shapes where C differs is irrelevant: shape is checked first
  cases.push({ name: `shape is ${what}`, make: (e) => args[e]({ shape }), type, msg });
}
// options
const optionCases: [string, unknown, ErrorCtor, RegExp][] = [
  ['epsilon 0', { epsilon: 0 }, RangeError, fmt('epsilon', '0')],
  ['epsilon negative', { epsilon: -1e-3 }, RangeError, fmt('epsilon', '-0.001')],
  ['epsilon NaN', { epsilon: NaN }, RangeError, fmt('epsilon', 'NaN')],
  ['epsilon Infinity', { epsilon: Infinity }, RangeError, fmt('epsilon', 'Infinity')],
  ['epsilon a string', { epsilon: '1e-3' }, TypeError, fmt('epsilon')],
  ['batchSize 0', { batchSize: 0 }, RangeError, fmt('batchSize', '0')],
  ['batchSize 2.5', { batchSize: 2.5 }, RangeError, fmt('batchSize', '2.5')],
  ['batchSize -1', { batchSize: -1 }, RangeError, fmt('batchSize', '-1')],
  ['batchSize NaN', { batchSize: NaN }, RangeError, fmt('batchSize', 'NaN')],
  ['batchSize Infinity', { batchSize: Infinity }, RangeError, fmt('batchSize', 'Infinity')],
  ['batchSize a string', { batchSize: '4' }, TypeError, fmt('batchSize')],
  ["device 'gpu'", { device: 'gpu' }, TypeError, fmt('device', '"gpu"')],
  ["device 'CPU'", { device: 'CPU' }, TypeError, fmt('device', '"CPU"')],
  ['device a number', { device: 1 }, TypeError, fmt('device', '1')],
  ['an unknown option key', { epsilon: 1e-3, eps: 1e-3 }, TypeError, /'eps'/],
  ['an unknown option key (typo of batchSize)', { batchsize: 4 }, TypeError, /'batchsize'/],
  ['options a number', 5, TypeError, fmt('options', '5')],
  ['options a string', 'cpu', TypeError, fmt('options')],
  ['options an array', [1e-3], TypeError, fmt('options')],
];
for (const [what, options, type, msg] of optionCases) cases.push({ name: what, make: (e) => args[e]({ options }), type, msg });

if (!cudaAvailable)
  cases.push({
    name: "device 'cuda' without a usable GPU",
    make: (e) => args[e]({ options: { device: 'cuda' } }),
    type: Error,
    msg: new RegExp(`cuda.*${esc(cuda?.reason ?? '')}`, 'i'),
  });

// statistics arguments
cases.push(
  { name: 'stats null', make: on(['backward'], () => bwd({ stats: null })), type: TypeError, msg: fmt('stats', 'null') },
  { name: 'stats a Float32Array', make: on(['backward'], () => bwd({ stats: new Float32Array(4) })), type: TypeError, msg: fmt('stats') },
  { name: 'stats an array', make: on(['backward'], () => bwd({ stats: [] })), type: TypeError, msg: fmt('stats') },
  { name: 'stats without featureVar', make: on(['backward'], () => bwd({ stats: { ...baseStats, featureVar: undefined } })), type: TypeError, msg: fmt('stats.featureVar', 'undefined') },
  { name: 'stats.batchVar a Float64Array', make: on(['backward'], () => bwd({ stats: { ...baseStats, batchVar: new Float64Array(M * C) } })), type: TypeError, msg: fmt('stats.batchVar') },
  { name: 'stats.batchMean of wrong length', make: on(['backward'], () => bwd({ stats: { ...baseStats, batchMean: new Float32Array(M * C + 1) } })), type: RangeError, msg: fmt('stats.batchMean') },
  { name: 'stats.featureMean of population length M', make: on(['backward'], () => bwd({ stats: { ...baseStats, featureMean: new Float32Array(M) } })), type: RangeError, msg: fmt('stats.featureMean') },
  { name: 'population null', make: on(['infer'], () => inf({ population: null })), type: TypeError, msg: fmt('population', 'null') },
  { name: 'population.featureMean of mini-batch length B*M', make: on(['infer'], () => inf({ population: { ...basePop, featureMean: new Float32Array(B * M) } })), type: RangeError, msg: fmt('population.featureMean', 'Float32Array(12)') },
  { name: 'population.featureVar an Array', make: on(['infer'], () => inf({ population: { ...basePop, featureVar: [1, 1, 1] } })), type: TypeError, msg: fmt('population.featureVar') },
  { name: 'population.batchMean missing', make: on(['infer'], () => inf({ population: { ...basePop, batchMean: undefined } })), type: TypeError, msg: fmt('population.batchMean') },
  { name: 'population.batchVar of wrong length', make: on(['infer'], () => inf({ population: { ...basePop, batchVar: new Float32Array(C) } })), type: RangeError, msg: fmt('population.batchVar') },
  { name: 'use null', make: on(['infer'], () => inf({ use: null })), type: TypeError, msg: fmt('use', 'null') },
  { name: 'use a number', make: on(['infer'], () => inf({ use: 15 })), type: TypeError, msg: fmt('use', '15') },
  { name: 'use.batchMean a string', make: on(['infer'], () => inf({ use: { ...baseUse, batchMean: 'yes' } })), type: TypeError, msg: fmt('use.batchMean', '"yes"') },
  { name: 'use.featureVar a number', make: on(['infer'], () => inf({ use: { ...baseUse, featureVar: 1 } })), type: TypeError, msg: fmt('use.featureVar', '1') },
  { name: 'use with an unknown key', make: on(['infer'], () => inf({ use: { ...baseUse, featureStd: true } })), type: TypeError, msg: /featureStd/ },
);

// out buffers
{
  // x and a non-overlapping out.y in one buffer is fine (checked below); overlapping is not
  const shared = new Float32Array(3 * SIZE);
  const xIn = shared.subarray(0, SIZE);
  xIn.set(base.x);
  const gBuf = new Float32Array(M * C + 10);
  const gIn = gBuf.subarray(0, C);
  gIn.set(base.gamma);
  cases.push(
    { name: 'options.out a number', make: on(['forward', 'backward'], (e) => args[e]({ options: { out: 3 } })), type: TypeError, msg: fmt('options.out', '3') },
    { name: 'out.y of wrong length', make: on(['forward'], () => fwd({ options: { out: { y: new Float32Array(SIZE - 1) } } })), type: RangeError, msg: fmt('out.y', 'Float32Array(59)') },
    { name: 'out.y a Float64Array', make: on(['forward'], () => fwd({ options: { out: { y: new Float64Array(SIZE) } } })), type: TypeError, msg: fmt('out.y') },
    { name: 'out.batchVar of wrong length', make: on(['forward'], () => fwd({ options: { out: { batchVar: new Float32Array(B * M) } } })), type: RangeError, msg: fmt('out.batchVar') },
    { name: 'out.featureMean an Array', make: on(['forward'], () => fwd({ options: { out: { featureMean: new Array(B * M).fill(0) } } })), type: TypeError, msg: fmt('out.featureMean') },
    { name: 'out.featureVar detached', make: on(['forward'], () => fwd({ options: { out: { featureVar: detached(B * M) } } })), type: TypeError, msg: /out\.featureVar .*detached/ },
    { name: 'out.y is x (in place)', make: on(['forward'], () => fwd({ x: xIn, options: { out: { y: xIn } } })), type: RangeError, msg: /out\.y.*\bx\b/ },
    { name: 'out.y overlaps x partly', make: on(['forward'], () => fwd({ x: xIn, options: { out: { y: shared.subarray(SIZE - 1, 2 * SIZE - 1) } } })), type: RangeError, msg: /out\.y.*\bx\b/ },
    { name: 'out.batchMean overlaps gamma', make: on(['forward'], () => fwd({ gamma: gIn, options: { out: { batchMean: gBuf.subarray(2, 2 + M * C) } } })), type: RangeError, msg: /out\.batchMean.*gamma/ },
    {
      name: 'out.y overlaps out.featureVar',
      make: on(['forward'], () => {
        const o = new Float32Array(SIZE + B * M);
        return fwd({ options: { out: { y: o.subarray(0, SIZE), featureVar: o.subarray(SIZE - 3, SIZE - 3 + B * M) } } });
      }),
      type: RangeError,
      msg: /out\.y.*out\.featureVar|out\.featureVar.*out\.y/,
    },
    { name: 'out.dx of wrong length', make: on(['backward'], () => bwd({ options: { out: { dx: new Float32Array(SIZE + 1) } } })), type: RangeError, msg: fmt('out.dx') },
    { name: 'out.dgamma a Float64Array', make: on(['backward'], () => bwd({ options: { out: { dgamma: new Float64Array(C) } } })), type: TypeError, msg: fmt('out.dgamma') },
    { name: 'out.dx is dy (in place)', make: on(['backward'], () => bwd({ options: { out: { dx: base.dy } } })), type: RangeError, msg: /out\.dx.*\bdy\b/ },
    { name: 'out.dx is x', make: on(['backward'], () => bwd({ options: { out: { dx: base.x } } })), type: RangeError, msg: /out\.dx.*\bx\b/ },
    { name: 'out.dgamma is gamma', make: on(['backward'], () => bwd({ options: { out: { dgamma: base.gamma } } })), type: RangeError, msg: /out\.dgamma.*gamma/ },
    {
      name: 'out.dbeta overlaps stats.batchMean',
      make: on(['backward'], () => {
        const buf = new Float32Array(M * C + 2);
        const bm = buf.subarray(0, M * C);
        bm.set(baseStats.batchMean);
        return bwd({ stats: { ...baseStats, batchMean: bm }, options: { out: { dbeta: buf.subarray(M * C - 3, M * C + 2) } } });
      }),
      type: RangeError,
      msg: /out\.dbeta.*stats\.batchMean/,
    },
    { name: 'options.out of wrong length', make: on(['infer'], () => inf({ options: { out: new Float32Array(SIZE - 1) } })), type: RangeError, msg: fmt('options.out', 'Float32Array(59)') },
    { name: 'options.out a Float64Array', make: on(['infer'], () => inf({ options: { out: new Float64Array(SIZE) } })), type: TypeError, msg: fmt('options.out') },
    { name: 'options.out is x', make: on(['infer'], () => inf({ options: { out: base.x } })), type: RangeError, msg: /options\.out.*\bx\b/ },
  );
  cases.push({
    name: 'options.out overlaps population.featureVar',
    make: on(['infer'], () => {
      const buf = new Float32Array(SIZE + M);
      const fv = buf.subarray(SIZE - 1, SIZE - 1 + M);
      fv.set(basePop.featureVar);
      return inf({ population: { ...basePop, featureVar: fv }, options: { out: buf.subarray(0, SIZE) } });
    }),
    type: RangeError,
    msg: /options\.out.*population\.featureVar/,
  });
}

// run ------------------------------------------------------------------------------

for (const entry of ALL) {
  describe(`${entry} / ${entry}Async input rules`, () => {
    const mine = cases.map((c) => [c.name, c] as const).filter(([, c]) => c.make(entry) !== undefined);
    test.each(mine)('%s', async (_name, c) => {
      const a = c.make(entry)!;
      expectThrows(entry, a, c.type, c.msg, `${entry}: ${c.name} [seed ${seed}]`);
      await expectRejects(entry, c.make(entry)!, c.type, c.msg, `${entry}: ${c.name} [seed ${seed}]`);
    });

    test('the process still computes the right answers afterwards', async () => {
      await stillWorks();
    });
  });
}

// Unknown keys in `options` and in `use` are TypeErrors; an unknown key in `out` (a typo
// such as `batchmean`, or `dx` passed to forward) would otherwise be ignored silently and
// the caller's buffer never written.
describe('out objects: unknown keys are rejected like unknown option keys', () => {
  test.each([
    ['forward', 'batchmean', () => fwd({ options: { out: { y: new Float32Array(SIZE), batchmean: new Float32Array(M * C) } } })],
    ['forward', 'dx', () => fwd({ options: { out: { dx: new Float32Array(SIZE) } } })],
    ['backward', 'y', () => bwd({ options: { out: { y: new Float32Array(SIZE) } } })],
    ['backward', 'dGamma', () => bwd({ options: { out: { dGamma: new Float32Array(C) } } })],
  ] as [Entry, string, () => unknown[]][])('%s with out.%s', async (entry, key, make) => {
    const msg = new RegExp(`'${key}'|\\b${key}\\b`);
    expectThrows(entry, make(), TypeError, msg, `${entry} out.${key} [seed ${seed}]`);
    await expectRejects(entry, make(), TypeError, msg, `${entry} out.${key} [seed ${seed}]`);
  });
});

describe('no output is written when the input is rejected', () => {
  test('forward with a bad beta leaves out buffers untouched', async () => {
    const out = { y: poisoned(SIZE), batchMean: poisoned(M * C) };
    expect(() => bln.forward(base.x, SHAPE, base.gamma, new Float32Array(C + 1), { out })).toThrow(RangeError);
    await expect(bln.forwardAsync(base.x, SHAPE, base.gamma, base.beta, { out, epsilon: -1 })).rejects.toThrow(RangeError);
    expect(out.y.every((v) => Number.isNaN(v))).toBe(true);
    expect(out.batchMean.every((v) => Number.isNaN(v))).toBe(true);
  });
});

describe('valid variants the rules allow', () => {
  test("device 'cpu' and 'auto' work; null/undefined options fields mean the default", async () => {
    const ref = refForward(base.x, SHAPE, base.gamma, base.beta).y;
    for (const options of [{ device: 'cpu' as const }, { device: 'auto' as const }, {}, { epsilon: undefined, batchSize: undefined, device: undefined }]) {
      expectClose(bln.forward(base.x, SHAPE, base.gamma, base.beta, options).y, ref, 1e-5, `${JSON.stringify(options)} seed ${seed}`);
      expectClose((await bln.forwardAsync(base.x, SHAPE, base.gamma, base.beta, options)).y, ref, 1e-5, `${JSON.stringify(options)} seed ${seed}`);
    }
  });

  test('an out buffer sharing an ArrayBuffer with x without overlapping is accepted', () => {
    const buf = new Float32Array(2 * SIZE);
    const x = buf.subarray(0, SIZE);
    x.set(base.x);
    const y = buf.subarray(SIZE, 2 * SIZE);
    const res = bln.forward(x, SHAPE, base.gamma, base.beta, { out: { y } });
    expect(res.y).toBe(y);
    expectClose(y, refForward(base.x, SHAPE, base.gamma, base.beta).y, 1e-5, `seed ${seed}`);
    expectClose(x, base.x, 0, `x unchanged, seed ${seed}`);
  });

  test('infer: options.out adjacent to (not overlapping) a population array is accepted', () => {
    const buf = new Float32Array(SIZE + M);
    const fv = buf.subarray(SIZE, SIZE + M);
    fv.set(basePop.featureVar);
    const pop = { ...basePop, featureVar: fv };
    const out = buf.subarray(0, SIZE);
    const y = bln.infer(base.x, SHAPE, base.gamma, base.beta, pop, baseUse, { out });
    expect(y).toBe(out);
    expectClose(y, refInfer(base.x, SHAPE, base.gamma, base.beta, basePop, baseUse), 1e-5, `seed ${seed}`);
  });

  (cudaAvailable ? test : test.skip)("device 'cuda' works where a GPU is usable", () => {
    const y = bln.forward(base.x, SHAPE, base.gamma, base.beta, { device: 'cuda' }).y;
    expectClose(y, refForward(base.x, SHAPE, base.gamma, base.beta).y, 1e-5, `seed ${seed}`);
  });
});

describe('PopulationStats input rules', () => {
  const ctor = (shape: unknown) => () => new bln.PopulationStats(shape as number[]);
  test.each([
    ['not an array', '4,3', TypeError, fmt('shape')],
    ['null', null, TypeError, fmt('shape', 'null')],
    ['rank 1', [5], RangeError, /rank >= 2/],
    ['a zero dim', [4, 0, 3], RangeError, fmt('shape[1]', '0')],
    ['a non-integer dim', [2.5, 3], RangeError, fmt('shape[0]', '2.5')],
    ['a negative dim', [4, -3], RangeError, fmt('shape[1]', '-3')],
    ['a NaN dim', [NaN, 3], RangeError, fmt('shape[0]', 'NaN')],
    ['a string dim', [4, '3'], TypeError, fmt('shape[1]')],
  ] as [string, unknown, ErrorCtor, RegExp][])('constructor: shape %s', (_n, shape, type, msg) => {
    let e: unknown;
    try {
      ctor(shape)();
    } catch (err) {
      e = err;
    }
    checkError(e, type, msg, `PopulationStats(${JSON.stringify(shape)})`);
  });

  const pshape = [4, 3, 5];
  const good = () => ({
    batchMean: new Float32Array(15).fill(1),
    batchVar: new Float32Array(15).fill(2),
    featureMean: new Float32Array(12).fill(3),
    featureVar: new Float32Array(12).fill(4),
  });
  test.each([
    ['null', () => null, TypeError, fmt('stats', 'null')],
    ['a number', () => 7, TypeError, fmt('stats', '7')],
    ['batchMean of wrong length', () => ({ ...good(), batchMean: new Float32Array(14) }), RangeError, fmt('stats.batchMean')],
    ['batchVar a Float64Array', () => ({ ...good(), batchVar: new Float64Array(15) }), TypeError, fmt('stats.batchVar')],
    ['featureMean of length not a multiple of M', () => ({ ...good(), featureMean: new Float32Array(13) }), RangeError, fmt('stats.featureMean')],
    ['featureMean empty', () => ({ ...good(), featureMean: new Float32Array(0) }), RangeError, fmt('stats.featureMean')],
    ['featureVar of a different batch size than featureMean', () => ({ ...good(), featureVar: new Float32Array(9) }), RangeError, fmt('stats.featureVar')],
    ['featureVar missing', () => ({ ...good(), featureVar: undefined }), TypeError, fmt('stats.featureVar', 'undefined')],
    ['featureMean detached', () => ({ ...good(), featureMean: detached(12) }), TypeError, /stats\.featureMean .*detached/],
  ] as [string, () => unknown, ErrorCtor, RegExp][])('update: stats %s; a failed update changes nothing', (_n, make, type, msg) => {
    const p = new bln.PopulationStats(pshape);
    p.update(good());
    const before = p.result();
    let e: unknown;
    try {
      p.update(make() as bln.Stats);
    } catch (err) {
      e = err;
    }
    checkError(e, type, msg, `update(${_n})`);
    expect(p.count).toBe(1);
    const after = p.result();
    for (const k of bln.STAT_KEYS) expect(Array.from(after[k])).toEqual(Array.from(before[k]));
  });

  test('result() before any update throws an Error that says so', () => {
    const p = new bln.PopulationStats(pshape);
    expect(() => p.result()).toThrow(Error);
    expect(() => p.result()).toThrow(/before any update/);
    p.update(good());
    expect(() => p.result()).not.toThrow();
  });

  test('still works afterwards', async () => {
    await stillWorks();
  });
});
