import { createRequire } from 'node:module';
import { join } from 'node:path';
import { tempDir } from './fixtures.js';

/** One sd_notify datagram as received, with the receiver's wall-clock time. */
export interface Notification {
  at: number;
  fields: Record<string, string>;
  raw: string;
}

interface DgramSocket {
  bind(path: string): void;
  close(): void;
  on(event: 'error', listener: (err: Error) => void): void;
}

interface DgramModule {
  createSocket(type: 'unix_dgram', listener: (msg: Buffer) => void): DgramSocket;
}

function loadDgram(): DgramModule | undefined {
  try {
    return createRequire(import.meta.url)('unix-dgram') as DgramModule;
  } catch {
    return undefined;
  }
}

/** Whether unix-dgram (an optional, native dependency) loads here. */
export const hasUnixDgram = loadDgram() !== undefined;

/**
 * What systemd is to a Type=notify service: a real AF_UNIX datagram socket bound in a temp dir
 * (pass `path` as NOTIFY_SOCKET), recording every datagram.
 */
export class NotifyReceiver {
  private constructor(
    readonly path: string,
    private readonly socket: DgramSocket,
    readonly messages: Notification[],
    readonly errors: Error[],
  ) {}

  static open(): NotifyReceiver {
    const dgram = loadDgram();
    if (!dgram) throw new Error('unix-dgram is not available');
    const path = join(tempDir('ec-notify-'), 'notify.sock');
    const messages: Notification[] = [];
    const errors: Error[] = [];
    const socket = dgram.createSocket('unix_dgram', (msg) => messages.push(parse(msg)));
    socket.on('error', (err) => errors.push(err));
    socket.bind(path);
    if (errors.length > 0) throw new Error(`cannot bind ${path}: ${errors[0]!.message}`);
    return new NotifyReceiver(path, socket, messages, errors);
  }

  /** Datagrams carrying `key`, in arrival order. */
  with(key: string): Notification[] {
    return this.messages.filter((m) => key in m.fields);
  }

  /** Arrival times of WATCHDOG=1 pings after `after`. */
  pings(after = 0): number[] {
    return this.messages.filter((m) => m.fields.WATCHDOG === '1' && m.at > after).map((m) => m.at);
  }

  /** Polls until `pred` holds for the datagrams so far; throws with what arrived otherwise. */
  async waitFor(pred: (m: Notification[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (Date.now() > deadline) {
        throw new Error(`no ${what} within ${timeoutMs} ms; received: ${JSON.stringify(this.messages.map((m) => m.raw))}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  close(): void {
    this.socket.close();
  }
}

function parse(msg: Buffer): Notification {
  const raw = msg.toString();
  const fields: Record<string, string> = {};
  for (const line of raw.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { at: Date.now(), fields, raw };
}
