/**
 * Benchmark: the daemon's RSS while its embedded broker is attacked as in issue 12. Starts the
 * built daemon (`npm run build` first) with the embedded broker and measures VmRSS before,
 * at the peak during, and 3 s after each case:
 *   flood:    4 raw connections, each a PUBLISH header announcing 200 MB, then the body as fast
 *             as the socket takes it;
 *   retained: 500 retained 1 MB messages at QoS 1 from one mqtt.js client.
 *
 *   npx vite-node test/bench/broker-flood.ts
 *   npx vite-node test/bench/broker-flood.ts -- --embedded '{"max_packet_bytes":2097152}'
 *
 * --embedded is merged into mqtt.embedded (the second line lets 1 MB messages through the
 * packet limit, to reach the retained cap). For the code before the limits, run this file
 * from a worktree of that commit (docs/embedded-broker.md#measured). Not a test; Linux only.
 */
import { parseArgs } from 'node:util';
import { tempDir } from '../helpers/fixtures.js';
import { floodPublish, mqttClient, peakRssDuring, rssMb, startBrokerDaemon } from '../helpers/broker-flood.js';

const { values } = parseArgs({ options: { embedded: { type: 'string', default: '{}' } } });
const MB = 1_000_000;
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 3_000));
const fmt = (mb: number): string => `${mb.toFixed(0)} MB`;

async function run(name: string, work: (port: number) => Promise<string>): Promise<void> {
  const d = await startBrokerDaemon(tempDir('ec-broker-bench-'), `bench-${name}`, JSON.parse(values.embedded) as Record<string, unknown>);
  try {
    await settle();
    const before = rssMb(d.pid);
    const { result, peakMb } = await peakRssDuring(d.pid, () => work(d.port));
    await settle();
    const alive = d.daemon.proc.exitCode === null;
    console.log(`${name}\tRSS before ${fmt(before)}\tpeak ${fmt(peakMb)} (+${fmt(peakMb - before)})\tafter ${alive ? fmt(rssMb(d.pid)) : 'daemon gone'}\t${result}`);
  } finally {
    d.daemon.proc.kill('SIGKILL');
  }
}

await run('flood', async (port) => {
  const results = await Promise.all([1, 2, 3, 4].map((i) => floodPublish(port, 200 * MB, `flood-${i}`)));
  const taken = results.reduce((s, r) => s + r.sent, 0) / MB;
  const closed = results.filter((r) => r.closedMs !== undefined);
  const slowest = Math.max(0, ...closed.map((r) => r.closedMs!));
  return `800 MB announced, ${taken.toFixed(1)} MB taken; ${closed.length}/4 closed by the broker${closed.length ? ` (last after ${slowest.toFixed(0)} ms)` : ''}`;
});

await run('retained', async (port) => {
  const client = await mqttClient(port);
  const payload = Buffer.alloc(MB, 0x62);
  let sent = 0;
  // A QoS 1 publish in flight when the broker closes the connection never completes: race it.
  const closed = new Promise<never>((_, reject) => client.once('close', () => reject(new Error('closed by the broker'))));
  closed.catch(() => {});
  try {
    for (; sent < 500; sent++) await Promise.race([client.publishAsync(`junk/${sent}`, payload, { qos: 1, retain: true }), closed]);
  } catch (err) {
    return `connection closed after ${sent} messages (${(err as Error).message})`;
  } finally {
    client.end(true);
  }
  const reader = await mqttClient(port);
  let kept = 0;
  reader.on('message', (_t, _p, packet) => void (packet.retain && kept++));
  await reader.subscribeAsync('junk/#');
  await new Promise((r) => setTimeout(r, 3_000));
  await reader.endAsync();
  return `500 MB offered, ${kept} retained`;
});
