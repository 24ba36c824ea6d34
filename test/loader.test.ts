// The addon loader (lib/addon.ts): the order of the places it tries, and errors that say why.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

type AddonModule = typeof import('../lib/addon');

/** A fresh copy of lib/addon.ts (its cache empty) loaded with BLN_ADDON_PATH set to `addonPath`. */
function freshLoader(addonPath: string | undefined): AddonModule {
  const saved = process.env.BLN_ADDON_PATH;
  if (addonPath === undefined) delete process.env.BLN_ADDON_PATH;
  else process.env.BLN_ADDON_PATH = addonPath;
  let mod: AddonModule | undefined;
  jest.isolateModules(() => {
    mod = require('../lib/addon') as AddonModule;
  });
  afterCleanup.push(() => {
    if (saved === undefined) delete process.env.BLN_ADDON_PATH;
    else process.env.BLN_ADDON_PATH = saved;
  });
  return mod!;
}

const afterCleanup: (() => void)[] = [];
afterEach(() => {
  while (afterCleanup.length) afterCleanup.pop()!();
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bln-loader-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('order: build/Release, build/Debug, then prebuilds/<platform>-<arch>-<libc>', () => {
  const a = freshLoader(undefined);
  const root = a.packageRoot;
  const tag = a.prebuildTag();
  expect(tag.startsWith(`${process.platform}-${process.arch}`)).toBe(true);
  if (process.platform === 'linux') expect(['glibc', 'musl']).toContain(tag.split('-')[2]);
  expect(a.addonCandidates()).toEqual([
    path.join(root, 'build', 'Release', 'bln.node'),
    path.join(root, 'build', 'Debug', 'bln.node'),
    path.join(root, 'prebuilds', tag, 'bln.node'),
  ]);
});

test('BLN_ADDON_PATH, when set, is the only place tried', () => {
  const file = path.join(tmp, 'missing.node');
  const a = freshLoader(file);
  expect(a.addonCandidates()).toEqual([file]);
  expect(() => a.native()).toThrow(/BLN_ADDON_PATH is set, so only it was tried[\s\S]*missing\.node: not found[\s\S]*npx batch-layer-norm-build/);
  expect(a.addonPath()).toBeUndefined();
});

test('a binary for another architecture is named as such', () => {
  // A 64-byte ELF header for another machine (x86-64 here: aarch64; elsewhere: x86-64).
  const head = Buffer.alloc(64);
  head.writeUInt32BE(0x7f454c46, 0);
  head[4] = 2; // 64-bit
  head[5] = 1; // little-endian
  head[6] = 1;
  head.writeUInt16LE(3, 16); // ET_DYN
  head.writeUInt16LE(process.arch === 'x64' ? 0xb7 : 0x3e, 18);
  const file = path.join(tmp, 'other-arch.node');
  fs.writeFileSync(file, head);
  const a = freshLoader(file);
  const other = process.arch === 'x64' ? 'arm64' : 'x64';
  expect(() => a.native()).toThrow(new RegExp(`other-arch\\.node: built for ${other}, this process is ${process.arch}`));
});

test('the addon this suite uses loads, and addonPath() names it', () => {
  const a = freshLoader(process.env.BLN_ADDON_PATH); // test:asan sets it to the sanitized build
  a.native();
  expect(a.addonCandidates()).toContain(a.addonPath());
});

// A shared object that needs GLIBC_2.99 (linked against a stub libc.so.6 that defines that version).
const canLinkGlibcProbe = process.platform === 'linux' && process.report?.getReport &&
  !!(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime &&
  require('child_process').spawnSync('cc', ['--version']).status === 0;
(canLinkGlibcProbe ? test : test.skip)('a binary that needs a newer glibc: the version it needs and the one here', () => {
  const { execFileSync } = require('child_process') as typeof import('child_process');
  const dir = fs.mkdtempSync(path.join(tmp, 'glibc-'));
  fs.writeFileSync(path.join(dir, 'v.map'), 'GLIBC_2.99 { global: bln_probe; };\n');
  fs.writeFileSync(path.join(dir, 'stub.c'), 'void bln_probe(void) {}\n');
  fs.writeFileSync(path.join(dir, 'probe.c'), 'extern void bln_probe(void); void f(void) { bln_probe(); }\n');
  const env = { ...process.env, LD_PRELOAD: '' }; // test:asan preloads libasan; the compiler needs none
  execFileSync('cc', ['-shared', '-fPIC', '-o', 'libc.so.6', '-Wl,--version-script=v.map', '-Wl,-soname,libc.so.6', 'stub.c'], { cwd: dir, env });
  execFileSync('cc', ['-shared', '-fPIC', '-o', 'probe.node', 'probe.c', '-L.', '-l:libc.so.6'], { cwd: dir, env });
  const a = freshLoader(path.join(dir, 'probe.node'));
  expect(() => a.native()).toThrow(/probe\.node: .*GLIBC_2\.99.* \(it needs GLIBC_2\.99; this system has glibc 2\.\d+\)/);
});
