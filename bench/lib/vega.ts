// Renders a vega-lite spec to an SVG string in Node (vega's headless 'none' renderer).

// vega and vega-lite are ES modules; a real dynamic import keeps them loadable from this CommonJS build.
const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<unknown>;

interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}

/** Compiles a vega-lite spec; `patch` may adjust the compiled vega spec before rendering. */
export async function renderVegaLite(spec: Record<string, unknown>, patch?: (vegaSpec: Record<string, unknown>) => void): Promise<string> {
  const vega = (await dynamicImport('vega')) as VegaModule;
  const vl = (await dynamicImport('vega-lite')) as VegaLiteModule;
  const compiled = vl.compile(spec).spec as Record<string, unknown>;
  patch?.(compiled);
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
