// Progress bars on stderr (cli-progress): for each run in progress, one bar for the run and one
// for its current epoch. Where stderr is no terminal (CI logs, nohup) there are none; the
// per-epoch lines are printed either way.
import * as cliProgress from 'cli-progress';

import type { RunProgress } from './train';

export interface RunBars extends RunProgress {
  end(): void;
}

export class Bars {
  private multi: cliProgress.MultiBar | null = null;

  constructor(enabled: boolean) {
    if (enabled && process.stderr.isTTY)
      this.multi = new cliProgress.MultiBar(
        {
          format: '{title} |{bar}| {percentage}% | {phase} | {info} | ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: 200,
          barsize: 24,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
  }

  log(line: string): void {
    if (this.multi) this.multi.log(line + '\n');
    else console.log(line);
  }

  /** Bars for one run of `total` rows. */
  run(title: string, total: number): RunBars {
    const m = this.multi;
    const run = m?.create(total, 0, { title: title.padEnd(26), phase: 'run', info: '' }) ?? null;
    let epoch: cliProgress.SingleBar | null = null;
    return {
      epoch: (label, n) => {
        if (epoch) m?.remove(epoch);
        epoch = m?.create(n, 0, { title: `  ${label}`.padEnd(26), phase: 'steps', info: '' }) ?? null;
      },
      tick: (n, phase, info) => {
        run?.increment(n, { phase, info });
        epoch?.increment(n, { phase, info });
      },
      log: (line) => this.log(line),
      end: () => {
        for (const b of [epoch, run]) if (b) m?.remove(b);
      },
    };
  }

  stop(): void {
    this.multi?.stop();
  }
}
