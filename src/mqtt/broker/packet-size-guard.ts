/**
 * Follows the MQTT packet boundaries of one connection's incoming bytes, reading only each
 * fixed header: a type byte, then the remaining length as a variable byte integer (1-4 bytes,
 * 7 bits each, low first). mqtt-packet (under aedes) buffers a whole packet before parsing
 * it and has no size limit, so a client announcing 200 MB and sending it slowly made the
 * daemon hold it all; this sees the announced size in the header's first bytes and says no
 * before anything is buffered. Pure: no sockets, chunks may split a header anywhere.
 */
export class PacketSizeGuard {
  /** Bytes of the current packet's body still to pass before the next header. */
  private skip = 0;
  /** Inside a header: 0 expects the type byte, 1-4 the length bytes read so far + 1. */
  private headerByte = 0;
  private length = 0;

  /** @param limit the largest whole packet (fixed header included) in bytes; raise it with `limit =` (the daemon's client). */
  constructor(public limit: number) {}

  /** Passes a chunk; returns why the connection must close, or undefined while all is well. */
  check(chunk: Uint8Array): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.headerByte === 0) {
        this.headerByte = 1;
        this.length = 0;
        continue;
      }
      this.length += (byte & 0x7f) * 128 ** (this.headerByte - 1);
      if (byte & 0x80) {
        // A fourth length byte must end the integer (MQTT 3.1.1 2.2.3): the most is 268,435,455.
        if (this.headerByte === 4) return 'malformed remaining length';
        this.headerByte++;
        continue;
      }
      const total = 1 + this.headerByte + this.length;
      if (total > this.limit) return `packet of ${total} bytes announced, over the limit of ${this.limit}`;
      this.skip = this.length;
      this.headerByte = 0;
    }
    return undefined;
  }
}
