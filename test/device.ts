// The device the suites run on: every call goes to CUDA under `npm run test:cuda-emu`
// (BLN_DEVICE=cuda, the emulated addon), else the default. The emulator runs about a million
// elements a second, so a suite whose point is not size takes smaller shapes there.
export const ON_CUDA = process.env.BLN_DEVICE === 'cuda';

/** `cpu` normally; `cuda` (smaller) on the emulated CUDA path. */
export function sized<T>(cpu: T, cuda: T): T {
  return ON_CUDA ? cuda : cpu;
}
