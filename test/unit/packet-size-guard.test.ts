import { describe, expect, it } from 'vitest';
import mqttPacket from 'mqtt-packet';
import { PacketSizeGuard } from '../../src/mqtt/broker/packet-size-guard.js';

// The guard reads only fixed headers; real packets from mqtt-packet's generator, cut anywhere.

const publish = (bytes: number): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(bytes), qos: 0, dup: false, retain: false });
const connect = mqttPacket.generate({ cmd: 'connect', clientId: 'c', protocolVersion: 4, protocolId: 'MQTT', clean: true, keepalive: 30 });
const ping = mqttPacket.generate({ cmd: 'pingreq' });

/** Feeds `bytes` in chunks of `size`; the first refusal, or undefined. */
function feed(guard: PacketSizeGuard, bytes: Buffer, size: number): string | undefined {
  for (let i = 0; i < bytes.length; i += size) {
    const why = guard.check(bytes.subarray(i, i + size));
    if (why !== undefined) return why;
  }
  return undefined;
}

describe('PacketSizeGuard', () => {
  it('passes a stream of packets within the limit, however it is cut', () => {
    // 200 and 20,000 bytes of payload: 2- and 3-byte remaining lengths.
    const stream = Buffer.concat([connect, publish(200), ping, publish(20_000), publish(0), ping]);
    for (const size of [1, 2, 3, 7, 64, 1000, stream.length]) expect(feed(new PacketSizeGuard(32_768), stream, size)).toBeUndefined();
  });

  it('refuses at the header of a packet announcing more than the limit, before its body', () => {
    const big = publish(300_000);
    for (const size of [1, 2, 5, 65_536]) {
      const guard = new PacketSizeGuard(262_144);
      const header = Buffer.concat([connect, big.subarray(0, 6)]);
      // Only the header was given: the refusal needs none of the body.
      expect(feed(guard, header, size)).toMatch(/packet of 300\d{3} bytes announced, over the limit of 262144/);
    }
  });

  it('counts the fixed header in the size: exactly the limit passes, one byte more does not', () => {
    const packet = publish(1000);
    expect(feed(new PacketSizeGuard(packet.length), packet, 13)).toBeUndefined();
    expect(feed(new PacketSizeGuard(packet.length - 1), packet, 13)).toMatch(/over the limit/);
  });

  it('refuses the largest announcement MQTT allows (268,435,455 bytes) and a fifth length byte', () => {
    expect(new PacketSizeGuard(1 << 20).check(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).toMatch(/268435460 bytes/);
    expect(new PacketSizeGuard(Infinity).check(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('malformed remaining length');
  });

  it('a raised limit (the daemon after CONNECT) lets big packets through and still follows the boundaries', () => {
    const guard = new PacketSizeGuard(1024);
    expect(feed(guard, connect, 4)).toBeUndefined();
    guard.limit = Infinity;
    expect(feed(guard, Buffer.concat([publish(5_000_000), ping]), 65_536)).toBeUndefined();
    guard.limit = 1024;
    expect(feed(guard, publish(2000), 3)).toMatch(/over the limit/);
  });
});
