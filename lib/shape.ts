import { invalidRange, invalidType } from './is';

/** The [B, M, C] view of a shape [B, d1..dk, C]. */
export interface View {
  shape: readonly number[];
  B: number;
  M: number;
  C: number;
  size: number;
}

// The native index type is int64; typed arrays are far below its range, but the
// product must also stay exact in a double.
const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

export function parseShape(shape: unknown, name = 'shape'): View {
  if (!Array.isArray(shape)) throw invalidType('array of positive integers', name, shape);
  if (shape.length < 2) throw invalidRange('array of rank >= 2 ([batch, ..., features])', name, shape);
  let size = 1;
  shape.forEach((d, i) => {
    if (typeof d !== 'number') throw invalidType('positive integer', `${name}[${i}]`, d);
    if (!Number.isSafeInteger(d) || d < 1) throw invalidRange('positive integer', `${name}[${i}]`, d);
    size *= d;
    if (size > MAX_ELEMENTS) throw new RangeError(`Expected ${name} whose element count fits the native index type but received [${shape.join(', ')}]`);
  });
  const B = shape[0] as number;
  const C = shape[shape.length - 1] as number;
  return { shape: [...shape] as number[], B, C, M: size / (B * C), size };
}

export function checkSizeMatches(view: View, length: number, name: string): void {
  if (length !== view.size)
    throw new RangeError(
      `Expected ${name} of length ${view.size} (the product of shape [${view.shape.join(', ')}]) but received length ${length}`,
    );
}

