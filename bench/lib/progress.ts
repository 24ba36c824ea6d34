// A progress bar on stderr while the benchmark runs (cli-progress); where stderr is not a
// terminal (CI logs) it prints one line per step instead.
import * as cliProgress from 'cli-progress';

export class Progress {
  private bar?: cliProgress.SingleBar;
  private done = 0;

  constructor(private readonly total: number) {
    if (process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        { format: 'bench {bar} {percentage}% | {value}/{total} | {eta_formatted} left | {label}', stream: process.stderr, hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { label: '' });
    }
  }

  /** Names the step now starting. */
  step(label: string): void {
    if (this.bar) this.bar.update(this.done, { label });
    else process.stderr.write(`[${this.done + 1}/${this.total}] ${label}\n`);
  }

  /** Marks the current step done. */
  tick(): void {
    this.done++;
    this.bar?.update(this.done);
  }

  stop(): void {
    this.bar?.stop();
  }
}
