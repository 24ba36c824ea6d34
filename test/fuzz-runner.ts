// The fuzz runner (test/fuzz.test.ts): runs a case's call sync and async, checks it against
// the oracle (a documented error from both, or equal results that match the float64
// reference, with inputs and the memory around views untouched), and tallies the outcomes.
import { carry, pick, slotChoices, type Placed, type Want } from './fuzz-inputs';
import { expectSameBits } from './reference';

// ------------------------------------------------------------------ counting

const counts: Record<string, Record<string, number>> = {};
export function count(prop: string, outcome: string): void {
  const c = (counts[prop] ??= {});
  c[outcome] = (c[outcome] ?? 0) + 1;
}

/** The summary printed after the fuzz tests: the cases per property and per outcome. */
export function summary(): string {
  const lines = Object.entries(counts).map(([p, c]) => {
    const total = Object.entries(c).reduce((a, [k, b]) => a + (k.startsWith('of which') ? 0 : b), 0);
    return `  ${p}: ${total} cases (${Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ')})`;
  });
  const all = Object.values(counts).reduce((a, c) => a + Object.entries(c).reduce((p, [k, q]) => p + (k.startsWith('of which') ? 0 : q), 0), 0);
  return `fuzz summary: ${all} cases\n${lines.join('\n')}`;
}

// ------------------------------------------------------------------ the oracle

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const names = (msg: string, ns: string[]) => ns.some((n) => new RegExp(`(^|[^A-Za-z0-9_.])${esc(n)}($|[^A-Za-z0-9_])`).test(msg));

export function checkError(e: unknown, wants: Want[], label: string): void {
  if (!(e instanceof Error)) throw new Error(`${label}: threw a non-Error ${String(e)}`);
  const ok = wants.some((w) => e.constructor === w.cls && names(e.message, w.names));
  if (!ok)
    throw new Error(
      `${label}: got ${e.constructor.name}: ${e.message}\n  expected one of ${wants.map((w) => `${w.cls.name} naming ${w.names.join('|')}`).join('; ')}`,
    );
}

export function expectMeanClose(got: Float32Array, ref: Float64Array, variance: Float64Array, label: string): void {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2 + variance[i]!;
  }
  if (!(Math.sqrt(num) <= 1e-5 * Math.sqrt(den))) throw new Error(`${label}: mean error ${Math.sqrt(num)} > 1e-5 * ${Math.sqrt(den)}`);
}

/** The float64 reference has values beyond float32's range: no float32 answer can match it. */
export const unrepresentable = (ref: ArrayLike<number>) => Array.prototype.some.call(ref, (v: number) => Math.abs(v) > 3.4e38);

// ------------------------------------------------------------------ the generic case runner

export interface Built {
  args: unknown[];
  /** the errors the invalid mutations document; empty: the call is valid */
  wants: Want[];
  /** inputs unchanged and the memory around views untouched */
  checkUntouched: (label: string) => void;
  /** the out buffers passed in (by result key) */
  outs: Record<string, Float32Array>;
  eps: number;
  N: number | undefined;
}

export interface CaseSpec<R> {
  prop: string;
  /** deterministic: called once for the sync and once for the async call */
  build: () => Built;
  run: (args: unknown[]) => R;
  runAsync: (args: unknown[]) => Promise<R>;
  arrays: (r: R) => Record<string, Float32Array>;
  checkRef: (r: R, built: Built, label: string) => void;
}

export async function runCase<R>(spec: CaseSpec<R>, label: string): Promise<void> {
  const a = spec.build();
  const wants = dedupe(a.wants);
  let res: R | undefined;
  let err: unknown;
  try {
    res = spec.run(a.args);
  } catch (e) {
    err = e;
  }
  const b = spec.build();
  let p: Promise<R> | undefined;
  try {
    p = spec.runAsync(b.args);
  } catch (e) {
    throw new Error(`${label}: the async variant threw synchronously: ${String(e)}`);
  }
  if (!(p instanceof Promise)) throw new Error(`${label}: the async variant did not return a Promise`);
  let ares: R | undefined;
  let aerr: unknown;
  await p.then(
    (r) => void (ares = r),
    (e) => void (aerr = e),
  );
  if (wants.length > 0) {
    if (err === undefined) throw new Error(`${label}: sync call succeeded, expected one of ${wants.map((w) => `${w.cls.name} ${w.names}`).join('; ')}`);
    if (aerr === undefined) throw new Error(`${label}: async call resolved, expected a rejection`);
    checkError(err, wants, `${label} (sync)`);
    checkError(aerr, wants, `${label} (async)`);
    if ((err as Error).constructor !== (aerr as Error).constructor || (err as Error).message !== (aerr as Error).message)
      throw new Error(`${label}: sync and async errors differ: ${String(err)} vs ${String(aerr)}`);
    for (const [k, o] of [...Object.entries(a.outs), ...Object.entries(b.outs)])
      if (!o.every((v) => Number.isNaN(v))) throw new Error(`${label}: out ${k} was written by a rejected call`);
    a.checkUntouched(`${label} (sync, error)`);
    b.checkUntouched(`${label} (async, error)`);
    count(spec.prop, (err as Error).constructor.name);
    return;
  }
  if (err !== undefined) throw new Error(`${label}: valid call threw ${(err as Error).constructor?.name}: ${(err as Error).message}`);
  if (aerr !== undefined) throw new Error(`${label}: valid async call rejected ${(aerr as Error).constructor?.name}: ${(aerr as Error).message}`);
  const sa = spec.arrays(res!);
  const aa = spec.arrays(ares!);
  for (const k of Object.keys(sa)) expectSameBits(aa[k]!, sa[k]!, `${label}: async ${k} vs sync`);
  for (const [k, o] of Object.entries(a.outs)) if (sa[k] !== o) throw new Error(`${label}: result ${k} is not the out buffer given`);
  for (const [k, o] of Object.entries(b.outs)) if (aa[k] !== o) throw new Error(`${label}: async result ${k} is not the out buffer given`);
  a.checkUntouched(`${label} (sync)`);
  b.checkUntouched(`${label} (async)`);
  spec.checkRef(res!, a, label);
  count(spec.prop, 'ok');
}

function dedupe(ws: Want[]): Want[] {
  const seen = new Set<string>();
  return ws.filter((w) => {
    const k = `${w.cls.name}:${w.names.join('|')}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Records inputs (by value) and placed views' guards, to check after the call. */
export class Tracker {
  private readonly items: [string, Float32Array, Float32Array, () => boolean][] = [];
  input(name: string, p: Placed): Float32Array {
    this.items.push([name, p.v, Float32Array.from(p.v), p.guardOk]);
    return p.v;
  }
  guardOnly(name: string, p: Placed): Float32Array {
    this.items.push([name, p.v, new Float32Array(0), p.guardOk]);
    return p.v;
  }
  has(v: Float32Array): boolean {
    return this.items.some((it) => it[1] === v);
  }
  check(label: string): void {
    for (const [name, v, copy, guard] of this.items) {
      if (copy.length && !bytesEqual(v, copy)) throw new Error(`${label}: input ${name} was modified`);
      if (!guard()) throw new Error(`${label}: memory around ${name} was written`);
    }
  }
}
function bytesEqual(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (ua.length !== ub.length) return false;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** A tensor argument holding `values`, possibly mutated (k >= 0: an index into its choices). */
export function tensorSlot(tr: Tracker, wants: Want[], name: string, values: Float32Array, k: number): unknown {
  if (k < 0) return tr.input(name, carry(values, 'plain'));
  const c = pick(slotChoices(name, values.length, true), k);
  if (c.kind === 'carrier') return tr.input(name, carry(values, c.carrier));
  wants.push(c.want);
  return c.make();
}

/**
 * An out buffer of `len` elements: k < 0 absent; a carrier is a valid NaN-filled view (its
 * surroundings are guarded); null/undefined are "not given"; anything else is invalid.
 */
export function outSlot(tr: Tracker, wants: Want[], name: string, len: number, k: number): { v: unknown; given: boolean } {
  if (k < 0) return { v: undefined, given: false };
  const c = pick(slotChoices(name, len, false), k);
  if (c.kind === 'carrier') {
    const placed = carry(new Float32Array(len), c.carrier);
    placed.v.fill(NaN);
    return { v: tr.guardOnly(name, placed), given: true };
  }
  const v = c.make();
  if (v === null || v === undefined) return { v, given: true };
  wants.push(c.want);
  return { v, given: true };
}

/**
 * The out object of a call with a slot per key, each possibly given (`ks[i]`, as outSlot);
 * keys that `skip` names are left to the caller. `outs` holds the valid buffers given.
 */
export function outObject(
  tr: Tracker,
  outWants: Want[],
  keys: readonly string[],
  lens: Record<string, number>,
  ks: number[],
  skip: (key: string) => boolean,
): { outObj: Record<string, unknown>; outs: Record<string, Float32Array> } {
  const outObj: Record<string, unknown> = {};
  const outs: Record<string, Float32Array> = {};
  keys.forEach((key, i) => {
    if (skip(key)) return;
    const { v, given } = outSlot(tr, outWants, `out.${key}`, lens[key]!, ks[i]!);
    if (!given) return;
    outObj[key] = v;
    if (v instanceof Float32Array && tr.has(v)) outs[key] = v;
  });
  return { outObj, outs };
}

/** Whether the options argument carries `out` (so the out buffers given are the results). */
export const passesOut = (options: unknown, out: unknown): boolean =>
  options !== null && typeof options === 'object' && (options as { out?: unknown }).out === out;
