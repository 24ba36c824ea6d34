// Regressions in the native layer (binding/addon.cpp, cpp/) found by the sanitizer/fuzz work of
// docs/reliability-native.md. These call the raw addon (lib/addon.ts native()), below lib's own
// validation, the way a caller of the internal export table could.
import { native } from '../lib/addon';

const B = 2, M = 1, C = 3, n = B * M * C;
const f32 = (k: number, v = 1) => new Float32Array(k).fill(v);

// Errors thrown by the addon come from node's own realm, not jest's sandbox: compare by name.
function thrown(f: () => void): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

function infer(use: number): void {
  native().infer(f32(n), B, M, C, f32(C), f32(C, 0), f32(M * C), f32(M * C), f32(M), f32(M), use, 1e-3, B, 0, f32(n));
}

describe('native infer: the use mask', () => {
  // It was cast to int unchecked: NaN or an out-of-range double is undefined behaviour in C++.
  test.each([NaN, Infinity, -Infinity, -1, 16, 1.5, 1e300, -0.5])('use = %p is a RangeError', (use) => {
    const e = thrown(() => infer(use));
    expect(e.name).toBe('RangeError');
    expect(e.message).toMatch(/use must be an integer mask/);
  });
  test('every mask 0..15 is accepted', () => {
    for (let use = 0; use < 16; use++) expect(() => infer(use)).not.toThrow();
  });
});

describe('native: buffer lengths are checked before the core touches memory', () => {
  // The core now re-checks every length the binding gives it (cpp/bln.h Lengths); through the
  // binding a wrong length is still the binding's RangeError, and nothing is written.
  test('a short output buffer is a RangeError and stays untouched', () => {
    const y = f32(n - 1, NaN);
    const e = thrown(() =>
      native().forward(f32(n), B, M, C, f32(C), f32(C), 1e-3, B, 0, y, f32(M * C), f32(M * C), f32(B * M), f32(B * M)));
    expect(e.name).toBe('RangeError');
    expect(e.message).toMatch(/y has length 5, expected 6/);
    expect(Array.from(y).every(Number.isNaN)).toBe(true);
  });
});

describe('native: every array argument is a Float32Array', () => {
  // The binding takes type, length and data from one napi_get_typedarray_info call, which also
  // refuses values that are no typed array at all; nothing is computed for a refused call.
  const forwardWithX = (x: unknown) => () => {
    const y = f32(n, NaN);
    (native().forward as (...a: unknown[]) => void)(x, B, M, C, f32(C), f32(C, 0), 1e-3, B, 0, y, f32(M * C), f32(M * C), f32(B * M), f32(B * M));
    return y;
  };
  test.each([
    ['a Float64Array', new Float64Array(n)],
    ['an Int32Array', new Int32Array(n)],
    ['a Uint8Array of 4n bytes', new Uint8Array(4 * n)],
    ['a DataView', new DataView(new ArrayBuffer(4 * n))],
    ['a plain array', Array.from({ length: n }, () => 1)],
    ['a number', 3],
    ['undefined', undefined],
  ])('x as %s is a TypeError', (_name, x) => {
    const e = thrown(forwardWithX(x));
    expect(e.name).toBe('TypeError');
    expect(e.message).toMatch(/x must be a Float32Array/);
  });
  test('a Float32Array is accepted', () => {
    expect(Array.from(forwardWithX(f32(n))()).every(Number.isFinite)).toBe(true);
  });
});
