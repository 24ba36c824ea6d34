// fast-check arbitraries shared by the property tests.
import fc from 'fast-check';

const prod = (a: readonly number[]) => a.reduce((p, v) => p * v, 1);

/** C in 1..70, biased towards the edges of SIMD widths (8, 16) and non-multiples. */
export const featuresArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 1, max: 70 }),
  fc.constantFrom(1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 63, 64, 65, 70),
);

/** B in 1..40. */
export const batchArb: fc.Arbitrary<number> = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(1, 2, 3, 8, 16, 17, 33, 40));

/** Middle dims d1..dk (rank 2..5), product M <= 300. */
export const middleArb: fc.Arbitrary<number[]> = fc
  .array(fc.integer({ min: 1, max: 17 }), { minLength: 0, maxLength: 3 })
  .filter((a) => prod(a) <= 300);

/** A shape [B, d1..dk, C] of rank 2..5. */
export const shapeArb: fc.Arbitrary<number[]> = fc
  .tuple(batchArb, middleArb, featuresArb)
  .map(([B, mid, C]) => [B, ...mid, C]);

/** epsilon: undefined means the default. */
export const epsArb: fc.Arbitrary<number | undefined> = fc.constantFrom(undefined, 1e-3, 1e-5, 1e-2, 0.1, 1);

/** batchSize relative to B: undefined (default), B itself, or another positive integer. */
export function batchSizeArb(): fc.Arbitrary<'default' | 'B' | number> {
  return fc.oneof(fc.constant('default' as const), fc.constant('B' as const), fc.integer({ min: 1, max: 64 }));
}

export function resolveN(choice: 'default' | 'B' | number, B: number): { N: number; option: number | undefined } {
  if (choice === 'default') return { N: B, option: undefined };
  if (choice === 'B') return { N: B, option: B };
  return { N: choice, option: choice };
}

export const seedArb: fc.Arbitrary<number> = fc.integer({ min: 0, max: 0x7fffffff });
