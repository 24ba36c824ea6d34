// Conv2DBackpropFilter for @tensorflow/tfjs-backend-wasm, which (up to 4.22 at least) has no
// such kernel, so no Conv2D model can train on wasm. Opt-in: registerWasmConvGradients().
//
// The filter gradient of a stride-s, dilation-1 Conv2D (NHWC) is itself a Conv2D, computed by
// kernels wasm has (PadV2, Transpose, Conv2D on XNNPACK, Slice):
//
//   dW[kh, kw, ci, co] = sum_{b, oh, ow} xpad[b, oh*s + kh, ow*s + kw, ci] * dy[b, oh, ow, co]
//
// i.e. a 'valid' Conv2D, stride 1 and dilation s, of xpad with batch and channels swapped
// ([ci, Hp, Wp, b]) by dy with batch and output rows/columns swapped ([oh, ow, b, co] as the
// filter), giving [ci, kh', kw', co] (kh' >= kh: rows past the last window are cut), then one
// transpose to [kh, kw, ci, co].
import * as tfc from '@tensorflow/tfjs-core';

export const CONV2D_BACKPROP_FILTER = 'Conv2DBackpropFilter';

interface Backend {
  disposeData(dataId: object, force?: boolean): boolean;
}

type Info = tfc.TensorInfo;

function run(name: string, inputs: tfc.NamedTensorInfoMap, backend: unknown, attrs: Record<string, unknown>): Info {
  const k = tfc.getKernel(name, 'wasm');
  if (k == null) throw new Error(`Conv2DBackpropFilter (wasm): the wasm backend has no '${name}' kernel`);
  return k.kernelFunc({ inputs, backend: backend as tfc.KernelBackend, attrs: attrs as tfc.NamedAttrMap }) as Info;
}

/** The kernel function (exported for tests). Inputs {x, dy}; attributes as tfjs's Conv2DBackpropFilter. */
export function conv2DBackpropFilterWasm(args: { inputs: tfc.NamedTensorInfoMap; backend: unknown; attrs?: tfc.NamedAttrMap }): Info {
  const { inputs, backend } = args;
  const attrs = (args.attrs ?? {}) as unknown as tfc.Conv2DBackpropFilterAttrs;
  const x = inputs.x;
  const dy = inputs.dy;
  if (x == null || dy == null) throw new TypeError('Conv2DBackpropFilter (wasm): inputs x and dy are required');
  if (attrs.dataFormat === 'NCHW') throw new Error("Conv2DBackpropFilter (wasm): dataFormat 'NCHW' is not supported (the wasm Conv2D is NHWC only)");
  const info = tfc.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { top, bottom, left, right } = info.padInfo;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const be = backend as Backend;
  const temps: Info[] = [];
  const keep = (t: Info): Info => (temps.push(t), t);
  try {
    // 'same' can ask for more padding at the bottom/right than any window reads; extra zero rows
    // only make the intermediate output larger (cut below). Negative pads do not occur.
    const xp =
      top || bottom || left || right
        ? keep(run('PadV2', { x }, backend, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }))
        : x;
    const xt = keep(run('Transpose', { x: xp }, backend, { perm: [3, 1, 2, 0] })); // [ci, Hp, Wp, b]
    const dyt = keep(run('Transpose', { x: dy }, backend, { perm: [1, 2, 0, 3] })); // [oh, ow, b, co]
    let g = keep(run('Conv2D', { x: xt, filter: dyt }, backend, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw], dimRoundingMode: undefined }));
    const [ci, gh, gw, co] = g.shape as [number, number, number, number];
    if (gh < kh || gw < kw) throw new Error(`Conv2DBackpropFilter (wasm): internal shape [${g.shape}] for a ${kh}x${kw} filter (output ${oh}x${ow})`);
    if (gh !== kh || gw !== kw) g = keep(run('Slice', { x: g }, backend, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] }));
    return run('Transpose', { x: g }, backend, { perm: [1, 2, 0, 3] }); // [kh, kw, ci, co]
  } finally {
    for (const t of temps) if (t !== x) be.disposeData(t.dataId);
  }
}

export interface RegisterWasmConvGradientsOptions {
  /** Replace a Conv2DBackpropFilter kernel already registered for wasm (default false: keep it). */
  force?: boolean;
}

/**
 * Registers Conv2DBackpropFilter for the 'wasm' backend (tfjs-backend-wasm has none), so that
 * Conv2D layers train there. Returns true if it registered the kernel, false if one was already
 * there (a later tfjs-backend-wasm's own, or an earlier call) and `force` was not set.
 * Needs only @tensorflow/tfjs-core; the wasm backend may be loaded before or after.
 */
export function registerWasmConvGradients(options: RegisterWasmConvGradientsOptions = {}): boolean {
  if (tfc.getKernel(CONV2D_BACKPROP_FILTER, 'wasm') != null) {
    if (!options.force) return false;
    tfc.unregisterKernel(CONV2D_BACKPROP_FILTER, 'wasm');
  }
  tfc.registerKernel({ kernelName: CONV2D_BACKPROP_FILTER, backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm as unknown as tfc.KernelFunc });
  return true;
}
