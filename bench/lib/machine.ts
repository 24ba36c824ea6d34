// What the benchmark ran on: CPU, cores, SIMD levels, GPU (if any), node, and a slug for
// the results folder (bench/results/<slug>/).
import * as os from 'os';

import * as bln from '../../lib';

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  platform: string;
  node: string;
  simd: string;
  simdSupported: string[];
  threads: number;
  gpu: string;
  date: string;
  slug: string;
}

export function machineInfo(): Machine {
  const info = bln.backendInfo();
  const cpu = os.cpus()[0]?.model?.trim() ?? 'unknown';
  const cores = os.cpus().length;
  const cuda = info.devices.find((d) => d.type === 'cuda');
  const gpu = cuda?.available ? String(cuda.name ?? 'CUDA device') : `none (${cuda?.reason ?? 'no CUDA'})`;
  return {
    cpu,
    cores,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.platform()}-${os.arch()}`,
    node: process.version,
    simd: info.simd,
    simdSupported: info.simdSupported,
    threads: info.maxThreads,
    gpu,
    date: new Date().toISOString(),
    slug: machineSlug(cpu, cores),
  };
}

/** "AMD EPYC 7B13 64-Core Processor", 2 -> "amd-epyc-2c": vendor + family + cores. */
export function machineSlug(cpu: string, cores: number): string {
  const words = cpu
    .toLowerCase()
    .replace(/\(r\)|\(tm\)|processor|cpu|@.*$/g, ' ')
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  const family = words.filter((w) => !/\d/.test(w) || /^(m\d|i\d)$/.test(w)).slice(0, 2);
  return [...(family.length ? family : ['cpu']), `${cores}c`].join('-');
}

export function describe(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.platform}, SIMD ${m.simdSupported.join('/')}, GPU: ${m.gpu}, node ${m.node}`;
}
