// Node smoke test of a non-native addon (the arm64 prebuilt under qemu-aarch64, scripts/arm64-check.sh):
// the loader, then the simd.test.ts reference checks at every SIMD level and 1 / all threads, without
// jest (jest's resolver is a native binding of the host's architecture). Compiled by arm64-check.sh;
// not a jest file. Exit status 0 when every check passes; `EXPECT_ADDON=<suffix>` checks which file
// the loader picked, `EXPECT_SIMD=neon` that the level is there.
import * as bln from '../lib';
import { addonPath } from '../lib/addon';
import { allUses, dims, expectClose, expectSameBits, makeInputs, poisoned, randomPop, refBackward, refForward, refInfer, Rng, sizeOf } from './reference';

const SHAPES: number[][] = [[64, 1100], [3, 520], [128, 7], [64, 1, 37], [17, 3, 13], [40, 4, 65], [300, 9], [3, 3000, 5], [1, 1, 9], [9, 2, 2, 17]];
const seed = Number(process.env.SEED ?? 20261202);

async function main(): Promise<void> {
  const t0 = Date.now();
  const initial = bln.backendInfo();
  const file = addonPath() ?? '';
  console.log(`arm64-smoke: node ${process.version} ${process.arch}; addon ${file}; simd ${initial.simdSupported.join('/')}; maxThreads ${initial.maxThreads}; seed ${seed}`);
  if (process.env.EXPECT_ADDON && !file.endsWith(process.env.EXPECT_ADDON)) throw new Error(`loaded ${file}, expected ...${process.env.EXPECT_ADDON}`);
  if (process.env.EXPECT_SIMD && !initial.simdSupported.includes(process.env.EXPECT_SIMD))
    throw new Error(`SIMD level ${process.env.EXPECT_SIMD} missing: ${initial.simdSupported}`);
  const rng = new Rng(seed);
  const data = SHAPES.map((shape) => {
    const inp = makeInputs(rng, shape, 0.4, 1.3);
    const population = randomPop(rng, shape, 0.3, 0.4);
    return { ...inp, population, refFwd: refForward(inp.x, shape, inp.gamma, inp.beta), refBwd: refBackward(inp.dy, inp.x, shape, inp.gamma) };
  });
  let passed = 0;
  let failed = 0;
  const check = (fn: () => void): void => {
    try {
      fn();
      passed++;
    } catch (e) {
      failed++;
      console.log(`FAIL ${(e as Error).message}`);
    }
  };
  for (const level of initial.simdSupported) {
    for (const threads of [...new Set([1, initial.maxThreads])]) {
      bln.configure({ simd: level, threads });
      const at = `simd=${level} threads=${threads}`;
      for (const d of data) {
        const { B, M, C } = dims(d.shape);
        const ctx = `${at} shape=[${d.shape}]`;
        const out = { y: poisoned(sizeOf(d.shape)), batchMean: poisoned(M * C), batchVar: poisoned(M * C), featureMean: poisoned(B * M), featureVar: poisoned(B * M) };
        const r = bln.forward(d.x, d.shape, d.gamma, d.beta, { out });
        check(() => expectClose(r.y, d.refFwd.y, 1e-5, `y ${ctx}`));
        for (const k of bln.STAT_KEYS) check(() => expectClose(r.stats[k], d.refFwd.stats[k], 1e-5, `${k} ${ctx}`));
        const g = bln.backward(d.dy, d.x, d.shape, d.gamma, r.stats);
        if (B >= 3 || B === 1) check(() => expectClose(g.dx, d.refBwd.dx, 1e-4, `dx ${ctx}`));
        check(() => expectClose(g.dgamma, d.refBwd.dgamma, 1e-4, `dgamma ${ctx}`));
        check(() => expectClose(g.dbeta, d.refBwd.dbeta, 1e-4, `dbeta ${ctx}`));
        // The spec's exactness rule: infer with all four flags false is forward's y, bit for bit.
        const y0 = bln.infer(d.x, d.shape, d.gamma, d.beta, d.population, allUses()[0]!);
        check(() => expectSameBits(y0, r.y, `infer use=0 vs forward ${ctx}`));
        allUses().forEach((use, k) => {
          if (k % 5 !== 0) return; // 0, 5, 10, 15: none, mixed, all from the population
          const y = bln.infer(d.x, d.shape, d.gamma, d.beta, d.population, use);
          check(() => expectClose(y, refInfer(d.x, d.shape, d.gamma, d.beta, d.population, use, undefined, undefined, d.refFwd.stats), 1e-5, `infer use=${k} ${ctx}`));
        });
      }
      const a = await bln.forwardAsync(data[1]!.x, data[1]!.shape, data[1]!.gamma, data[1]!.beta);
      check(() => expectClose(a.y, data[1]!.refFwd.y, 1e-5, `forwardAsync ${at}`));
      check(() => expectSameBits(a.y, bln.forward(data[1]!.x, data[1]!.shape, data[1]!.gamma, data[1]!.beta).y, `forwardAsync vs forward ${at}`));
    }
  }
  console.log(`arm64-smoke: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
