/**
 * Capturing what gets logged: a logger that records its warnings and errors, and a Writable that keeps
 * every line pino writes (with a wait for the lines of one request id, written when its response closes).
 */
import { Writable } from 'node:stream';
import type { Logger } from '../../index';

/** A logger that records what it is told. */
export function recordingLogger(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, warn: (message: string) => void warnings.push(String(message)), error: (message: string) => void errors.push(String(message)) };
}

/** One JSON log line. */
export type Line = Record<string, unknown>;

export interface CapturedStream {
  stream: Writable;
  /** Everything written so far. */
  text(): string;
  /** Everything written so far, one parsed object per line. */
  lines(): Line[];
}

/** A Writable that keeps every line pino writes. */
export function captureStream(): CapturedStream {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const text = () => chunks.join('');
  return { stream, text, lines: () => text().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Line) };
}

/**
 * The log lines of `requestId`, once at least one arrived (lines are written when the response closes);
 * whatever there is (maybe none) after `timeoutMs`.
 */
export async function linesFor(capture: CapturedStream, requestId: string, timeoutMs = 3_000): Promise<Line[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = capture.lines().filter((line) => line.requestId === requestId);
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
