/**
 * A server stream, as the client reads it: newline-delimited JSON (`{"result": …}` per message, as grpc-gateway
 * writes it), or Server-Sent Events (`data: …` per message) when the client accepts `text/event-stream`. An error
 * after the first message cannot change the status any more: it is the last line (`{"error": problem}`) or an
 * `event: error`, and the answer ends.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { GatewayError } from '../errors';
import { problemDocument } from '../problem';
import { responseFiltersOf } from '../response-filters';
import type { FilteredResponse } from '../response-filters';

export type StreamFormat = 'ndjson' | 'sse';

/** SSE when the client's Accept names text/event-stream, NDJSON otherwise. */
export function streamFormat(req: IncomingMessage): StreamFormat {
  return /\btext\/event-stream\b/i.test(String(req.headers.accept ?? '')) ? 'sse' : 'ndjson';
}

export class StreamWriter {
  private started = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly format: StreamFormat,
  ) {}

  get hasStarted(): boolean {
    return this.started;
  }

  /** Sends the status and headers (through the route's header filters) before the first message. */
  start(extra: Record<string, string>): void {
    if (this.started) return;
    this.started = true;
    const headers: OutgoingHttpHeaders = {
      ...extra,
      'content-type': this.format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-cache',
      // Reverse proxies in front (nginx) must pass each message on at once.
      'x-accel-buffering': 'no',
    };
    const response: FilteredResponse = { status: 200, headers: headers as FilteredResponse['headers'] };
    for (const filter of responseFiltersOf(this.req) ?? []) filter.headers?.(response, this.req);
    this.res.writeHead(response.status, response.headers as OutgoingHttpHeaders);
    this.res.flushHeaders();
  }

  /** Writes one message; false when the client's socket is full (wait for 'drain'). */
  message(json: unknown): boolean {
    const text = JSON.stringify(json);
    return this.res.write(this.format === 'sse' ? `data: ${text}\n\n` : `{"result":${text}}\n`);
  }

  /** Ends the answer, with the error as its last message when there is one. */
  end(error: GatewayError | undefined): void {
    if (error) {
      const text = JSON.stringify(problemDocument(this.req, error));
      this.res.write(this.format === 'sse' ? `event: error\ndata: ${text}\n\n` : `{"error":${text}}\n`);
    }
    this.res.end();
  }
}
