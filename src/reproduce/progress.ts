// A progress bar on stderr: one bar redrawn in place on a terminal, one line per step otherwise
// (CI logs). Steps are the coarse units (train / evaluate one model), counted when they start
// (seeds may run side by side); details refresh the text.

export class Progress {
  #done = 0;
  #label = '';
  /** The current step's label. */
  get label(): string {
    return this.#label;
  }
  readonly #started = performance.now();
  readonly #tty = Boolean(process.stderr.isTTY);
  #lastDraw = 0;

  constructor(readonly total: number) {}

  /** Starts the next step. */
  step(label: string): void {
    this.#done = Math.min(this.total, this.#done + 1);
    this.#label = label;
    if (this.#tty) this.#draw(label);
    else process.stderr.write(`[${this.#done}/${this.total}] ${label} (${this.#elapsed()})\n`);
  }

  /** Updates the text of the current step (terminal only, at most 10 times a second). */
  detail(text: string): void {
    if (!this.#tty || performance.now() - this.#lastDraw < 100) return;
    this.#draw(text);
  }

  /** Finishes the bar. */
  finish(message: string): void {
    this.#done = this.total;
    if (this.#tty) process.stderr.write(`\r\x1b[2K`);
    process.stderr.write(`${message} (${this.#elapsed()})\n`);
  }

  #elapsed(): string {
    const s = Math.round((performance.now() - this.#started) / 1000);
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  }

  #draw(text: string): void {
    this.#lastDraw = performance.now();
    const width = 24;
    const filled = Math.round((this.#done / this.total) * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `[${bar}] ${String(Math.round((100 * this.#done) / this.total)).padStart(3)}% ${this.#elapsed()} ${text}`;
    const columns = process.stderr.columns ?? 100;
    process.stderr.write(`\r\x1b[2K${line.slice(0, columns - 1)}`);
  }
}
