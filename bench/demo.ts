// `npm run demo`: normalise a real-sized batch on the native path, print what the
// addon runs on, the timings against a same-size copy, and a float64 spot check.
import * as bln from '../lib';

function median(a: number[]): number {
  const s = [...a].sort((p, q) => p - q);
  return s[s.length >> 1]!;
}

function timeIt(fn: () => void, reps: number): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(t);
}

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const th = 2 * Math.PI * u();
    a[i] = r * Math.cos(th);
    if (i + 1 < n) a[i + 1] = r * Math.sin(th);
  }
  return a;
}

async function main(): Promise<void> {
  const info = bln.backendInfo();
  console.log(`batch-layer-norm ${info.version}`);
  for (const d of info.devices) console.log(`  ${d.type}: ${d.available ? 'available' : 'unavailable'}${d.name ? ` (${d.name})` : ''}${d.reason ? ` - ${d.reason}` : ''}`);
  console.log(`  simd: ${info.simd} (supported: ${info.simdSupported.join(', ')}), threads: ${info.threads}/${info.maxThreads}`);

  // A ViT-B/16 activation batch: 32 images x 196 patches x 768 features.
  const shape = [32, 196, 768];
  const [B, M, C] = [32, 196, 768];
  const n = B * M * C;
  const x = randn(n, 1);
  const dy = randn(n, 2);
  const gamma = new Float32Array(C).map((_, i) => 1 + 0.01 * (i % 7));
  const beta = new Float32Array(C).map((_, i) => 0.01 * (i % 5));

  const { y, stats } = bln.forward(x, shape, gamma, beta, { batchSize: B });
  const grads = bln.backward(dy, x, shape, gamma, stats);
  const pop = new bln.PopulationStats(shape).update(stats);
  const yInf = bln.infer(x, shape, gamma, beta, pop.result(), { batchMean: true, batchVar: true, featureMean: true, featureVar: true });

  // Float64 spot check of one output element, straight from the spec.
  const [b0, m0, c0] = [3, 17, 100];
  let mb = 0, vb = 0, mf = 0, vf = 0;
  for (let b = 0; b < B; b++) mb += x[(b * M + m0) * C + c0]!;
  mb /= B;
  for (let b = 0; b < B; b++) vb += (x[(b * M + m0) * C + c0]! - mb) ** 2;
  vb /= B;
  for (let c = 0; c < C; c++) mf += x[(b0 * M + m0) * C + c]!;
  mf /= C;
  for (let c = 0; c < C; c++) vf += (x[(b0 * M + m0) * C + c]! - mf) ** 2;
  vf /= C;
  const xv = x[(b0 * M + m0) * C + c0]!;
  const wf = 1 / B - 1e-4, wb = 1 - (1 / B + 1e-4);
  const ref = (gamma[c0]! * (wf * (xv - mf) / Math.sqrt(vf + 1e-3) + wb * (xv - mb) / Math.sqrt(vb + 1e-3))) / Math.sqrt(C) + beta[c0]!;
  const got = y[(b0 * M + m0) * C + c0]!;
  console.log(`\nshape [${shape.join(', ')}] (${(n / 1e6).toFixed(1)}M elements)`);
  console.log(`  y[${b0},${m0},${c0}] = ${got.toPrecision(7)}, float64 reference ${ref.toPrecision(7)} (rel. diff ${(Math.abs(got - ref) / Math.abs(ref)).toExponential(1)})`);
  console.log(`  dbeta[0] = ${grads.dbeta[0]!.toFixed(4)}, infer(population) y[0] = ${yInf[0]!.toFixed(4)}`);

  const reps = 15;
  const out = { y: new Float32Array(n) };
  const bout = { dx: new Float32Array(n) };
  const tCopy = timeIt(() => void new Float32Array(x), reps);
  const tFwd = timeIt(() => void bln.forward(x, shape, gamma, beta, { out }), reps);
  const tBwd = timeIt(() => void bln.backward(dy, x, shape, gamma, stats, { out: bout }), reps);
  const population = pop.result();
  const tInf = timeIt(() => void bln.infer(x, shape, gamma, beta, population, { batchMean: true, batchVar: true, featureMean: true, featureVar: true }, { out: out.y }), reps);
  const gb = (bytes: number, ms: number) => (bytes / ms / 1e6).toFixed(1);
  console.log(`\nmedian of ${reps} (preallocated outputs), same run:`);
  console.log(`  copy  new Float32Array(x) ${tCopy.toFixed(2)} ms  (${gb(8 * n, tCopy)} GB/s at 8 B/elem)`);
  console.log(`  forward   ${tFwd.toFixed(2)} ms  ${(tFwd / tCopy).toFixed(2)}x copy  (${gb(8 * n, tFwd)} GB/s at 8 B/elem)`);
  console.log(`  backward  ${tBwd.toFixed(2)} ms  ${(tBwd / tCopy).toFixed(2)}x copy  (${gb(12 * n, tBwd)} GB/s at 12 B/elem)`);
  console.log(`  infer     ${tInf.toFixed(2)} ms  ${(tInf / tCopy).toFixed(2)}x copy`);

  // The async variant keeps the event loop free.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 10; i++) await bln.forwardAsync(x, shape, gamma, beta, { out });
  clearInterval(timer);
  console.log(`  10 x forwardAsync: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms, ${ticks} timer ticks meanwhile`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
