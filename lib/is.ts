// Argument checks in the style "Expected X for Y but received Z".
import { types } from 'util';

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'function') return 'a function';
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor?.name ?? 'TypedArray';
    return `${name}(${(value as unknown as { length?: number }).length ?? value.byteLength})`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name;
    return name && name !== 'Object' ? `a ${name}` : 'an object';
  }
  return typeof value;
}

export function invalidType(expected: string, name: string, actual: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

export function invalidRange(expected: string, name: string, actual: unknown): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

export function defined(v: unknown): boolean {
  return v !== undefined && v !== null;
}

export function plainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

export function isDetached(buf: ArrayBufferLike): boolean {
  const d = (buf as { detached?: boolean }).detached;
  if (typeof d === 'boolean') return d;
  if (buf.byteLength !== 0 || types.isSharedArrayBuffer(buf)) return false;
  try {
    new Uint8Array(buf as ArrayBuffer);
    return false;
  } catch {
    return true;
  }
}

/**
 * A Float32Array (any view, SharedArrayBuffer-backed too) that is not detached. Checked by
 * its internal type, not `instanceof`: arrays from another realm (a vm context, a jest
 * sandbox) are Float32Arrays too, and the native side accepts them.
 */
export function float32(v: unknown, name: string): Float32Array {
  // (`instanceof` first: it is the common case and cheaper than the internal-type query, which
  // with the `.buffer` below was a sixth of a small call)
  if (!(v instanceof Float32Array) && !types.isFloat32Array(v)) throw invalidType('Float32Array', name, v);
  // A view of a detached buffer has length 0, so only an empty view needs its buffer looked at.
  if (v.length === 0 && isDetached(v.buffer)) throw new TypeError(`Expected Float32Array for ${name} but received one whose buffer is detached`);
  return v;
}

export function float32OfLength(v: unknown, name: string, length: number): Float32Array {
  const a = float32(v, name);
  if (a.length !== length) throw invalidRange(`Float32Array of length ${length}`, name, a);
  return a;
}

export function bool(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw invalidType('boolean', name, v);
  return v;
}

export function positiveInteger(v: unknown, name: string): number {
  if (typeof v !== 'number') throw invalidType('positive integer', name, v);
  if (!Number.isSafeInteger(v) || v < 1) throw invalidRange('positive integer', name, v);
  return v;
}

export function positiveFinite(v: unknown, name: string): number {
  if (typeof v !== 'number') throw invalidType('finite number > 0', name, v);
  if (!Number.isFinite(v) || !(v > 0)) throw invalidRange('finite number > 0', name, v);
  return v;
}

export function oneOf<T extends string>(v: unknown, name: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T))
    throw invalidType(`one of ${values.map((s) => `'${s}'`).join(', ')}`, name, v);
  return v as T;
}
