// The error measures of the test suites: norm-relative (NaN never passes), against a given
// magnitude, and bitwise.

import type { Num } from './reference';

/**
 * ||got - ref|| / ||ref||; the absolute norm ||got - ref|| where ||ref|| = 0.
 * Infinity when got is not finite where ref is finite (NaN never passes), when
 * ref is NaN and got is not, or when the lengths differ.
 */
export function relErr(got: Num, ref: Num): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!;
    const r = ref[i]!;
    if (Number.isNaN(r)) {
      if (!Number.isNaN(g)) return Infinity;
      continue;
    }
    if (!Number.isFinite(r)) {
      if (g !== r) return Infinity;
      continue;
    }
    if (!Number.isFinite(g)) return Infinity;
    num += (g - r) * (g - r);
    den += r * r;
  }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

/** Throws (with context, e.g. the seed) when relErr(got, ref) > tol. */
export function expectClose(got: Num, ref: Num, tol: number, context: string): void {
  const e = relErr(got, ref);
  if (!(e <= tol)) {
    const firstBad = firstNonFinite(got);
    throw new Error(
      `relErr ${e} > ${tol} (${context})` +
        (got.length !== ref.length ? ` length ${got.length} != ${ref.length}` : '') +
        (firstBad >= 0 ? ` first non-finite at ${firstBad}` : ''),
    );
  }
}

/**
 * ||got - ref|| / ||mag||: the error of values that may sit near 0 (means) measured against the
 * magnitude of what they were computed from (mag, element by element), not against themselves.
 */
export function expectCloseToScale(got: Num, ref: Num, mag: Num, tol: number, context: string): void {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) (num += (got[i]! - ref[i]!) ** 2), (den += mag[i]! ** 2);
  const e = den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
  if (!(e <= tol) || got.length !== ref.length) throw new Error(`error ${e} > ${tol} (${context})`);
}

/** sqrt(mean^2 + var), element by element: the RMS of the values a mean was taken over. */
export function rmsOf(mean: Num, variance: Num): Float64Array {
  return Float64Array.from(mean as ArrayLike<number>, (mu, i) => Math.sqrt(mu * mu + Math.abs(variance[i]!)));
}

function firstNonFinite(a: Num): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/** Bitwise equality of two Float32Arrays (any views). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

export function expectSameBits(a: Float32Array, b: Float32Array, context: string): void {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length} (${context})`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++)
    if (ua[i] !== ub[i]) throw new Error(`not bitwise equal at ${i}: ${a[i]} vs ${b[i]} (${context})`);
}
