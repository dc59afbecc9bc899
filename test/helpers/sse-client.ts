import { get, type IncomingMessage } from 'node:http';

export interface SseClient {
  res: IncomingMessage;
  /** Everything received so far. */
  text: () => string;
  /** The complete events received so far, data parsed as JSON. */
  events: () => { event: string; data: unknown }[];
  /** Resolves when the connection is gone (ended by the server, or reset). */
  closed: Promise<void>;
}

/** An event-stream client over plain node:http (resolves once the response headers are in). */
export function connectSse(url: string): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', () => undefined); // a reset at shutdown
      const closed = new Promise<void>((r) => res.on('close', () => r()));
      const events = () =>
        text
          .split('\n\n')
          .slice(0, -1) // the last block may not be complete yet
          .filter((block) => block.startsWith('event: '))
          .map((block) => {
            const [head, ...data] = block.split('\n');
            return { event: head!.slice('event: '.length), data: JSON.parse(data.map((l) => l.slice('data: '.length)).join('\n')) as unknown };
          });
      resolve({ res, text: () => text, events, closed });
    });
    req.on('error', reject);
  });
}

/** Polls until `cond` holds. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
