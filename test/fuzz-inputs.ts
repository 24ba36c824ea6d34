// The inputs of a fuzz case (test/fuzz.test.ts): the valid forms a tensor argument may take
// (carriers: offset and misaligned views, SharedArrayBuffer, a Node Buffer's pool, WebAssembly
// memory, another realm, a subclass), the invalid values of a tensor, shape or option argument
// with the error each documents, and the arbitraries that choose among them.
import fc from 'fast-check';
import * as vm from 'vm';

import * as bln from '../lib';
import { Rng, sizeOf } from './reference';

type Cls = typeof Error | typeof TypeError | typeof RangeError;
export interface Want {
  cls: Cls;
  /** the message names one of these (as a whole word) */
  names: string[];
}

export const T = (...ns: string[]): Want => ({ cls: TypeError, names: ns });
export const R = (...ns: string[]): Want => ({ cls: RangeError, names: ns });

function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

/** A view of `a`'s values inside a larger buffer whose other bytes hold a sentinel, with its guard check. */
export interface Placed {
  v: Float32Array;
  /** the bytes around the view are untouched */
  guardOk: () => boolean;
}
const SENTINEL = -7.25;
function placeIn(buf: ArrayBufferLike, byteOffset: number, a: Float32Array): Placed {
  const all = new Float32Array(buf, 0, Math.floor(buf.byteLength / 4));
  all.fill(SENTINEL);
  const v = new Float32Array(buf, byteOffset, a.length);
  v.set(a);
  const k = byteOffset / 4;
  return {
    v,
    guardOk: () => {
      for (let i = 0; i < all.length; i++) if ((i < k || i >= k + a.length) && !Object.is(all[i], SENTINEL)) return false;
      return true;
    },
  };
}

const otherRealmF32 = vm.runInNewContext('(n) => new Float32Array(n)') as (n: number) => Float32Array;
class F32Sub extends Float32Array {}

/** Valid forms of a tensor holding `a`'s values. */
export const CARRIERS = ['plain', 'offset16', 'misaligned4', 'misaligned8', 'sab', 'sabMisaligned', 'nodeBufferPool', 'wasmMemory', 'otherRealm', 'subclass'] as const;
export type Carrier = (typeof CARRIERS)[number];
export function carry(a: Float32Array, how: Carrier): Placed {
  const n = a.length;
  const plain = (v: Float32Array): Placed => {
    v.set(a);
    return { v, guardOk: () => true };
  };
  switch (how) {
    case 'plain':
      return plain(new Float32Array(n));
    case 'offset16':
      return placeIn(new ArrayBuffer(4 * n + 48), 16, a);
    case 'misaligned4':
      return placeIn(new ArrayBuffer(4 * n + 48), 4, a);
    case 'misaligned8':
      return placeIn(new ArrayBuffer(4 * n + 48), 24, a);
    case 'sab':
      return plain(new Float32Array(new SharedArrayBuffer(4 * n)));
    case 'sabMisaligned':
      return placeIn(new SharedArrayBuffer(4 * n + 32), 12, a);
    case 'nodeBufferPool': {
      // small Buffers share one pooled ArrayBuffer at byte offsets that are multiples of 8
      const b = Buffer.allocUnsafe(4 * n);
      const v = new Float32Array(b.buffer, b.byteOffset, n);
      return plain(v);
    }
    case 'wasmMemory': {
      // (WebAssembly is not in this project's TS lib list)
      const WA = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
      const mem = new WA.Memory({ initial: Math.ceil((4 * n + 64) / 65536) });
      return placeIn(mem.buffer, 20, a);
    }
    case 'otherRealm':
      return plain(otherRealmF32(n));
    case 'subclass':
      return plain(new F32Sub(n));
  }
}

/** Invalid values for a tensor argument of length n (required: null/undefined are errors too). */
function badTensors(name: string, n: number, required: boolean): [string, () => unknown, Want][] {
  const t = T(name);
  const out: [string, () => unknown, Want][] = [
    ['a string', () => 'abc', t],
    ['a number', () => 42, t],
    ['NaN', () => NaN, t],
    ['a negative number', () => -1, t],
    ['a fraction', () => 1.5, t],
    ['a huge number', () => 1e300, t],
    ['a boolean', () => true, t],
    ['a bigint', () => 10n, t],
    ['a symbol', () => Symbol('x'), t],
    ['a plain array', () => Array.from({ length: n }, (_, i) => i), t],
    ['a Float64Array', () => new Float64Array(n), t],
    ['an Int32Array', () => new Int32Array(n), t],
    ['a Uint8Array of the same bytes', () => new Uint8Array(4 * n), t],
    ['a Node Buffer', () => Buffer.alloc(4 * n), t],
    ['a DataView', () => new DataView(new ArrayBuffer(4 * n)), t],
    ['an ArrayBuffer', () => new ArrayBuffer(4 * n), t],
    ['an array-like object', () => ({ length: n, 0: 1 }), t],
    ['a function', () => () => 0, t],
    ['one element longer', () => new Float32Array(n + 1), R(name)],
    ['one element shorter', () => new Float32Array(n - 1), R(name)],
    ['empty', () => new Float32Array(0), n === 0 ? t : R(name)],
    ['detached', () => detached(n), t],
  ];
  if (required) out.push(['null', () => null, t], ['undefined', () => undefined, t]);
  return out;
}

/** A mutation of one argument slot: a valid carrier or an invalid value. */
export type SlotChoice = { kind: 'carrier'; carrier: Carrier } | { kind: 'bad'; label: string; make: () => unknown; want: Want };
export function slotChoices(name: string, n: number, required = true): SlotChoice[] {
  return [
    ...CARRIERS.map((carrier) => ({ kind: 'carrier' as const, carrier })),
    ...badTensors(name, n, required).map(([label, make, want]) => ({ kind: 'bad' as const, label, make, want })),
  ];
}

/** Most slots stay as they are; some are mutated (an index into the slot's choices). */
export const mutArb = fc.oneof({ weight: 10, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1_000_000) });

/** Small shapes so thousands of float64 references stay cheap: B 1..9, M <= 24, C 1..40. */
export const smallShapeArb = fc
  .tuple(
    fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(1, 2, 3)),
    fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 3 }).filter((a) => a.reduce((p, v) => p * v, 1) <= 24),
    fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(1, 2, 3, 7, 8, 9, 15, 16, 17, 33)),
  )
  .map(([B, mid, C]) => [B, ...mid, C]);

export function dimsOf(shape: number[]) {
  const B = shape[0]!;
  const C = shape[shape.length - 1]!;
  const n = sizeOf(shape);
  return { B, C, M: n / (B * C), n };
}

// shape mutations: [label, new shape, wanted errors]
export function shapeChoices(shape: number[]): [string, unknown, Want[]][] {
  const k = shape.length;
  const lengthNames = ['x', 'dy'];
  return [
    ['a string', shape.join(','), [T('shape')]],
    ['null', null, [T('shape')]],
    ['undefined', undefined, [T('shape')]],
    ['a number', 12, [T('shape')]],
    ['an Int32Array', new Int32Array(shape), [T('shape')]],
    ['an array-like', { ...shape, length: k }, [T('shape')]],
    ['rank 1', [sizeOf(shape)], [R('shape')]],
    ['rank 0', [], [R('shape')]],
    ['a zero dim', shape.map((d, i) => (i === k - 1 ? 0 : d)), [R(`shape[${k - 1}]`)]],
    ['a negative dim', [-shape[0]!, ...shape.slice(1)], [R('shape[0]')]],
    ['a fractional dim', [shape[0]! + 0.5, ...shape.slice(1)], [R('shape[0]')]],
    ['a NaN dim', [shape[0]!, NaN, ...shape.slice(1)], [R('shape[1]')]],
    ['an Infinity dim', [Infinity, ...shape.slice(1)], [R('shape[0]')]],
    ['an unsafe integer dim', [2 ** 53, ...shape.slice(1)], [R('shape[0]')]],
    ['a huge number dim', [1e300, ...shape.slice(1)], [R('shape[0]')]],
    ['a string dim', [String(shape[0]), ...shape.slice(1)], [T('shape[0]')]],
    ['a bigint dim', [BigInt(shape[0]!), ...shape.slice(1)], [T('shape[0]')]],
    ['a null dim', [shape[0]!, null, ...shape.slice(1)], [T('shape[1]')]],
    ['a product that does not match x', [shape[0]! + 1, ...shape.slice(1)], [R(...lengthNames)]],
    ['a huge but safe product', [2 ** 20, 2 ** 20, 2 ** 10], [R(...lengthNames)]],
    ['a product beyond the index type', [2 ** 26, 2 ** 26, 2 ** 26], [R('shape')]],
  ];
}

const cuda = bln.backendInfo().devices.find((d) => d.type === 'cuda');
const cudaOk = !!cuda?.available;

// option mutations: [label, key, value, wanted error | undefined for valid]
function optionChoices(): [string, string, unknown, Want | undefined][] {
  return [
    ['epsilon 1e-5', 'epsilon', 1e-5, undefined],
    ['epsilon 0.1', 'epsilon', 0.1, undefined],
    ['epsilon 1', 'epsilon', 1, undefined],
    ['epsilon 1e3', 'epsilon', 1e3, undefined],
    ['epsilon 1e-20', 'epsilon', 1e-20, undefined],
    ['epsilon 1e-50 (below float32)', 'epsilon', 1e-50, undefined],
    ['epsilon 5e-324', 'epsilon', 5e-324, undefined],
    ['epsilon null (default)', 'epsilon', null, undefined],
    ['epsilon 0', 'epsilon', 0, R('epsilon')],
    ['epsilon -1e-3', 'epsilon', -1e-3, R('epsilon')],
    ['epsilon NaN', 'epsilon', NaN, R('epsilon')],
    ['epsilon Infinity', 'epsilon', Infinity, R('epsilon')],
    ['epsilon a string', 'epsilon', '1e-3', T('epsilon')],
    ['epsilon a boolean', 'epsilon', true, T('epsilon')],
    ['epsilon a bigint', 'epsilon', 1n, T('epsilon')],
    ['batchSize 1', 'batchSize', 1, undefined],
    ['batchSize 7', 'batchSize', 7, undefined],
    ['batchSize 64', 'batchSize', 64, undefined],
    ['batchSize 2^31', 'batchSize', 2 ** 31, undefined],
    ['batchSize MAX_SAFE_INTEGER', 'batchSize', Number.MAX_SAFE_INTEGER, undefined],
    ['batchSize undefined (default)', 'batchSize', undefined, undefined],
    ['batchSize 0', 'batchSize', 0, R('batchSize')],
    ['batchSize -3', 'batchSize', -3, R('batchSize')],
    ['batchSize 2.5', 'batchSize', 2.5, R('batchSize')],
    ['batchSize NaN', 'batchSize', NaN, R('batchSize')],
    ['batchSize 2^53', 'batchSize', 2 ** 53, R('batchSize')],
    ['batchSize 1e300', 'batchSize', 1e300, R('batchSize')],
    ['batchSize a string', 'batchSize', '4', T('batchSize')],
    ['device cpu', 'device', 'cpu', undefined],
    ['device auto', 'device', 'auto', undefined],
    ['device null (default)', 'device', null, undefined],
    ["device 'gpu'", 'device', 'gpu', T('device')],
    ["device ''", 'device', '', T('device')],
    ['device 1', 'device', 1, T('device')],
    ["device 'cuda'", 'device', 'cuda', cudaOk ? undefined : { cls: Error, names: ['cuda'] }],
    ['an unknown key', 'epsilonn', 1e-3, T('epsilonn')],
    ['an unknown key (prototype-ish name)', 'constructor', 1, T('constructor')],
  ];
}
// whole-options replacements
const OPTION_OBJECTS: [string, unknown, Want | undefined][] = [
  ['options undefined', undefined, undefined],
  ['options null', null, undefined],
  ['options {}', {}, undefined],
  ['options a number', 5, T('options')],
  ['options a string', 'cpu', T('options')],
  ['options an array', [1e-3], T('options')],
  ['options a Float32Array', new Float32Array(2), T('options')],
];

export const pick = <X>(list: readonly X[], k: number): X => list[k % list.length]!;

export interface OptSpec {
  eps: number;
  bs: number;
  dev: number;
  unknown: number;
  whole: number;
}
export const optSpecArb: fc.Arbitrary<OptSpec> = fc.record({
  eps: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) }),
  bs: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) }),
  dev: fc.oneof({ weight: 5, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) }),
  unknown: fc.oneof({ weight: 15, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) }),
  whole: fc.oneof({ weight: 12, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) }),
});
const byKey = (key: string) => optionChoices().filter(([, k]) => k === key);
const UNKNOWN_KEYS = optionChoices().filter(([, k]) => !['epsilon', 'batchSize', 'device'].includes(k));

/** The options argument; `out` (when any) is added. Returns the effective epsilon and N. */
export function optionsArg(wants: Want[], o: OptSpec, out: Record<string, unknown> | Float32Array | unknown, hasOut: boolean, outWants: Want[]): { options: unknown; eps: number; N: number | undefined } {
  if (o.whole >= 0) {
    const [, value, want] = pick(OPTION_OBJECTS, o.whole);
    if (want) wants.push(want);
    return { options: value, eps: 1e-3, N: undefined };
  }
  const opts: Record<string, unknown> = {};
  let eps = 1e-3;
  let N: number | undefined;
  const apply = (list: ReturnType<typeof optionChoices>, k: number) => {
    if (k < 0) return;
    const [, key, value, want] = pick(list, k);
    opts[key] = value;
    if (want) wants.push(want);
    else if (key === 'epsilon' && typeof value === 'number') eps = value;
    else if (key === 'batchSize' && typeof value === 'number') N = value;
  };
  apply(byKey('epsilon'), o.eps);
  apply(byKey('batchSize'), o.bs);
  apply(byKey('device'), o.dev);
  apply(UNKNOWN_KEYS, o.unknown);
  if (hasOut) {
    opts.out = out;
    wants.push(...outWants);
  }
  if (Object.keys(opts).length === 0 && o.eps % 3 === 0) return { options: undefined, eps, N };
  return { options: opts, eps, N };
}

export const rare = (w: number) => fc.oneof({ weight: w, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(1000) });

export function makeData(seed: number, shape: number[]) {
  const { C, n } = dimsOf(shape);
  const rng = new Rng(seed);
  const mean = rng.normal();
  const scale = 0.5 + rng.uniform();
  return { rng, x0: rng.normals(n, mean, scale), g0: rng.normals(C, 1, 0.5), b0: rng.normals(C, 0, 0.5), dy0: rng.normals(n) };
}

/** The shape argument, mutated when k >= 0; a shape error replaces the wants so far (parseShape runs first). */
export function shapeArg(wants: Want[], shape: number[], k: number): unknown {
  if (k < 0) return shape;
  const [, s, w] = pick(shapeChoices(shape), k);
  if (w.some((z) => z.names.some((nm) => nm.startsWith('shape')))) wants.length = 0;
  wants.push(...w);
  return s;
}
