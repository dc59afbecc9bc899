/**
 * The last lines a capture process wrote to stderr, for error messages ("what went wrong" is
 * usually ffmpeg's last line). Bounded, so a process that complains once per frame for months
 * costs a few KiB; redacted line by line as they arrive, so no secret (a URL with a password)
 * is ever kept in a message, a log line or a status payload.
 */
const MAX_LINES = 8;
const MAX_LINE_CHARS = 300;
const MAX_PARTIAL_CHARS = 4_096;
const SHOWN_LINES = 4;

export class StderrTail {
  private readonly lines: string[] = [];
  private partial = '';

  constructor(private readonly redact: (text: string) => string) {}

  add(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    // ffmpeg ends progress lines with \r; both count as line ends.
    const pieces = text.split(/\r\n|\r|\n/);
    this.partial = (pieces.pop() ?? '').slice(-MAX_PARTIAL_CHARS);
    for (const piece of pieces) this.keep(piece);
  }

  /** The last few lines, redacted, joined with "; " (empty when the process said nothing). */
  text(): string {
    const lines = [...this.lines];
    const partial = this.clean(this.partial);
    if (partial) lines.push(partial);
    return lines.slice(-SHOWN_LINES).join('; ');
  }

  private keep(line: string): void {
    const cleaned = this.clean(line);
    if (!cleaned) return;
    this.lines.push(cleaned);
    if (this.lines.length > MAX_LINES) this.lines.shift();
  }

  private clean(line: string): string {
    const redacted = this.redact(line.trim());
    return redacted.length > MAX_LINE_CHARS ? `${redacted.slice(0, MAX_LINE_CHARS)}...` : redacted;
  }
}
