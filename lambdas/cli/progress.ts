/** Live per-mailbox progress on a TTY: one line each, redrawn in place at most 10 times a second. */
import type { SessionProgress } from "../ingest/types.ts";

const REDRAW_MS = 100;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export class ProgressView {
  private readonly rows = new Map<string, { progress: SessionProgress; since: number }>();
  private drawnLines = 0;
  private lastDraw = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(progress: SessionProgress): void {
    const row = this.rows.get(progress.mailbox);
    this.rows.set(progress.mailbox, { progress, since: row?.since ?? Date.now() });
    const now = Date.now();
    if (progress.phase === "done" || now - this.lastDraw >= REDRAW_MS) {
      this.lastDraw = now;
      this.draw();
    }
  }

  /** Leaves the final state on screen. */
  finish(): void {
    this.draw();
    this.drawnLines = 0;
  }

  private draw(): void {
    const lines = [...this.rows.values()].map(({ progress: p, since }) => {
      const seconds = Math.max((Date.now() - since) / 1000, 0.001);
      const rate = `${formatBytes(p.bytesDone / seconds)}/s`;
      return `  ${p.mailbox.padEnd(20)} ${p.phase.padEnd(10)} ${p.messagesDone}/${p.messagesTotal} msgs  ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}  ${rate}`;
    });
    // Move up over the previous frame, then clear and rewrite each line.
    let frame = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : "";
    for (const line of lines) frame += `\x1b[2K${line}\n`;
    this.out.write(frame);
    this.drawnLines = lines.length;
  }
}
