import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { startCli, waitForLog, type Started } from './cli.js';
import { freePort } from './ports.js';
import { writeColourModel } from './fixtures.js';

// The embedded broker attacked as in issue 12: raw sockets announcing huge packets, floods of
// retained messages; the daemon's RSS read from /proc. Shared by the integration test and
// test/bench/broker-flood.ts.

/** VmRSS of a process in MB (Linux /proc). */
export function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) / 1024;
}

/** Runs `work` while sampling the RSS of `pid` every 50 ms; the largest sample with the result. */
export async function peakRssDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peakMb = rssMb(pid);
  const timer = setInterval(() => {
    try {
      peakMb = Math.max(peakMb, rssMb(pid));
    } catch {
      // gone: the caller's assertions say so
    }
  }, 50);
  try {
    const result = await work();
    return { result, peakMb: Math.max(peakMb, rssMb(pid)) };
  } finally {
    clearInterval(timer);
  }
}

export const connectPacket = (clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60 });

/** The fixed header of a QoS 0 PUBLISH whose body is `length` bytes (remaining length varint). */
export function publishHeader(length: number): Buffer {
  const bytes = [0x30];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

export interface FloodResult {
  /** Bytes the socket took before the broker closed it (or all of them). */
  sent: number;
  /** Milliseconds from the header to the close; undefined: never closed. */
  closedMs: number | undefined;
}

/**
 * One raw connection: CONNECT, then a PUBLISH header announcing `announced` bytes, then the
 * body as fast as the socket takes it, until the broker closes it or all was sent.
 */
export async function floodPublish(port: number, announced: number, clientId: string): Promise<FloodResult> {
  const socket: Socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  let closedAt: number | undefined;
  // Not events.once: it rejects on the 'error' (ECONNRESET) that comes with the broker's close.
  const closed = new Promise<void>((resolve) => socket.once('close', () => ((closedAt = performance.now()), resolve())));
  socket.write(connectPacket(clientId));
  const start = performance.now();
  socket.write(publishHeader(announced));
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  let sent = 0;
  while (closedAt === undefined && sent < announced) {
    const n = Math.min(chunk.length, announced - sent);
    if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
    sent += n;
  }
  socket.destroy();
  return { sent, closedMs: closedAt === undefined ? undefined : closedAt - start };
}

/** A raw TCP connection that sends nothing; resolves with it once connected, and tells when it closes. */
export async function idleSocket(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  const start = performance.now();
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve(performance.now() - start))) };
}

/** An mqtt.js client that does not reconnect; rejects with the broker's refusal. */
export function mqttClient(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  return connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4, ...opts });
}

export interface BrokerDaemon {
  daemon: Started;
  port: number;
  pid: number;
  /** `B/D`: the daemon's topic root. */
  root: string;
}

/**
 * The built daemon with a synthetic camera, the generated colour model and the embedded
 * broker; `embedded` is merged into mqtt.embedded (host and port are set here). Resolves once
 * its MQTT client is connected.
 */
export async function startBrokerDaemon(dir: string, deviceId: string, embedded: Record<string, unknown> = {}): Promise<BrokerDaemon> {
  const { model, labels } = writeColourModel(join(dir, 'model'));
  const port = await freePort();
  const config = join(dir, `${deviceId}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      device_id: deviceId,
      model: { path: model, labels, preset: 'imagenet', execution_providers: ['cpu'] },
      cameras: [{ id: 'cam1', source: { type: 'synthetic', fps: 2, width: 160, height: 120 } }],
      mqtt: { url: 'embedded', embedded: { host: '127.0.0.1', port, ...embedded } },
      http: { enabled: false },
      state_dir: join(dir, `state-${deviceId}`),
      stats_interval: 0,
    }),
  );
  const daemon = startCli(['run', '--config', config]);
  await waitForLog(daemon, (l) => l.msg === 'MQTT connected', 60_000);
  return { daemon, port, pid: daemon.proc.pid!, root: `edge-classifier/${deviceId}` };
}
