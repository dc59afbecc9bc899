import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { PacketSizeGuard } from './packet-size-guard.js';

/**
 * The connection aedes is given instead of the socket: bytes reach aedes only after the guard
 * saw them, so a packet announced too large closes the socket while at most one read chunk of
 * it is in memory. Backpressure passes through both ways (the socket pauses while aedes does
 * not read; aedes waits for 'drain' while the socket cannot write).
 */
export class GuardedSocket extends Duplex {
  constructor(
    readonly socket: Socket,
    readonly guard: PacketSizeGuard,
    onViolation: (why: string) => void,
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      const why = guard.check(chunk);
      if (why !== undefined) {
        onViolation(why);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) return done();
    // Whichever comes first; a closed socket never drains, and this stream is destroyed with it.
    const settle = (): void => {
      this.socket.off('drain', settle);
      this.socket.off('close', settle);
      done();
    };
    this.socket.on('drain', settle);
    this.socket.on('close', settle);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.socket.destroy();
    done(err);
  }
}
