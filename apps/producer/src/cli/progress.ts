/**
 * Terminal rendering for the CLI: progress bars, durations, counts, and a block of lines redrawn in
 * place on a TTY (stderr), never mixed into stdout (which stays machine-readable).
 */

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 3725 → "1h 2m 5s"; null → "?". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${m}m ${sec}s`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function formatHours(seconds: number): string {
  const h = seconds / 3600;
  return h >= 10 ? `${h.toFixed(1)} h` : h >= 0.1 ? `${h.toFixed(2)} h` : `${(seconds / 60).toFixed(1)} min`;
}

/** `[██████░░░░]` of `width` cells; a fraction outside 0..1 is clamped. */
export function bar(fraction: number, width = 24): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.floor(f * width);
  const partial = f * width - full >= 0.5 && full < width ? '▌' : '';
  return `[${'█'.repeat(full)}${partial}${'░'.repeat(width - full - partial.length)}]`;
}

export function percent(fraction: number): string {
  return `${(Math.min(1, Math.max(0, fraction)) * 100).toFixed(0).padStart(3)}%`;
}

export interface TtyLike {
  write(s: string): boolean;
  isTTY?: boolean;
}

/**
 * A block of lines redrawn in place (cursor up + clear line), at most every `minIntervalMs` unless
 * forced. Does nothing when the stream is not a TTY.
 */
export class LiveBlock {
  private lines = 0;
  private last = 0;
  constructor(
    private readonly stream: TtyLike,
    private readonly minIntervalMs = 100,
  ) {}

  get enabled(): boolean {
    return Boolean(this.stream.isTTY);
  }

  render(lines: string[], force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < this.minIntervalMs) return;
    this.last = now;
    let out = this.lines ? `\x1b[${this.lines}A` : '';
    for (const l of lines) out += `\r\x1b[2K${l}\n`;
    // Fewer lines than last time: clear the leftovers.
    for (let i = lines.length; i < this.lines; i++) out += '\r\x1b[2K\n';
    if (this.lines > lines.length) out += `\x1b[${this.lines - lines.length}A`;
    this.stream.write(out);
    this.lines = lines.length;
  }

  /** Leave the last render on screen; the next output starts below it. */
  done(): void {
    this.lines = 0;
  }
}
