import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, connectAsync, type MqttClient } from 'mqtt';
import { join } from 'node:path';
import { pino } from 'pino';
import { Outbox, type Send } from '../../src/mqtt/outbox/index.js';
import { createSystemClock } from '../../src/core/clock.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * The outbox in front of MQTT.js against a real mosquitto: a broker outage, and a restart during one.
 * (Drain rates are a measurement, not a test: 5-7.5k msg/s one at a time, 13-16k with a window
 * of 16, on loopback here.)
 *
 * How the subscriber gets everything: this broker runs with `persistence false`, so a restart
 * loses every session: a clean=false subscriber would not help (with a persisting broker it
 * would: the broker queues QoS 1 messages for the absent subscriber). So the subscriber here
 * re-subscribes on every connect and the publisher starts draining only once it has; a daemon
 * cannot see its subscribers, which is why automations that must not miss anything should use
 * a persistent session on a persisting broker.
 */

const logger = pino({ level: 'warn' });
const clock = createSystemClock();

interface Subscriber {
  client: MqttClient;
  seqs: number[];
  /** Resolves once subscribed on the current connection. */
  ready: () => Promise<void>;
}

async function subscriber(url: string, topic: string): Promise<Subscriber> {
  const client = await connectAsync(url, { clean: true, reconnectPeriod: 100, resubscribe: false });
  const seqs: number[] = [];
  client.on('message', (_t, payload) => seqs.push((JSON.parse(payload.toString()) as { seq: number }).seq));
  const subscribe = (): Promise<void> => client.subscribeAsync(topic, { qos: 1 }).then(() => undefined);
  let ready = subscribe();
  let waiting = false;
  // 'close' comes again after every failed reconnect attempt: wait for the next connect once.
  client.on('close', () => {
    if (waiting) return;
    waiting = true;
    ready = new Promise<void>((resolve) =>
      client.once('connect', () => {
        waiting = false;
        resolve(subscribe());
      }),
    );
  });
  await ready;
  return { client, seqs, ready: () => ready };
}

/** MQTT.js as the publisher should drive it: nothing is handed over while disconnected. */
function sender(client: MqttClient): Send {
  return async (m) => {
    if (!client.connected) throw new Error('MQTT offline');
    await client.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain });
  };
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function prediction(topic: string, seq: number): { topic: string; payload: string; qos: 1; retain: false; kind: 'prediction' } {
  // About the size of a real prediction with top-5 labels.
  const top = Array.from({ length: 5 }, (_, i) => ({ label: `label-number-${i}`, score: 0.123456 }));
  return { topic, payload: JSON.stringify({ v: 1, seq, ts: new Date().toISOString(), top, pad: 'x'.repeat(200) }), qos: 1, retain: false, kind: 'prediction' };
}

describe('outbox with MQTT.js and mosquitto', () => {
  let broker: Mosquitto;

  beforeAll(async () => {
    broker = await Mosquitto.start();
  });

  afterAll(async () => {
    await broker.stop();
  });

  it('buffers through a 5 s broker outage and delivers every message in order, none twice', async () => {
    const topic = 'ec/outage/cam/prediction';
    const sub = await subscriber(broker.url, topic);
    const outbox = new Outbox({ logger, clock, config: { max_messages: 1000, window: 16 } });
    await outbox.start();
    // queueQoSZero: false: MQTT.js must not build its own offline queue; the outbox is the queue.
    const client = connect(broker.url, { clean: true, reconnectPeriod: 300, connectTimeout: 2000, queueQoSZero: false });
    const results: string[] = [];
    client.on('error', () => undefined);
    client.on('connect', () => {
      void sub
        .ready()
        .then(() => outbox.deliver(sender(client)))
        .then((r) => results.push(r.stopped));
    });
    let seq = 0;
    let timer: NodeJS.Timeout | undefined;
    const produce = (): void => void (timer = setInterval(() => outbox.enqueue(prediction(topic, seq++)), 50)); // 20 msg/s
    produce();
    await clock.sleep(3000);

    // Stop the broker between two messages, once everything sent so far is acknowledged: a
    // message on the wire at the instant the broker dies may or may not have reached the
    // subscriber, and QoS 1 resends it either way (a duplicate that no queue can prevent).
    clearInterval(timer);
    await until(() => outbox.stats().queued === 0, 2000, 'the outbox to drain');
    await broker.stop();
    await until(() => !client.connected, 2000, 'the publisher to notice');
    produce();
    const atOutage = seq;
    await clock.sleep(5000);
    const buffered = outbox.stats().queued;
    await broker.restart();
    await clock.sleep(1000);
    clearInterval(timer);
    const total = seq;

    await until(() => sub.seqs.length >= total, 15_000, `${total} messages at the subscriber (got ${sub.seqs.length})`);
    await clock.sleep(300); // anything extra (a duplicate) would arrive now
    console.log(
      `outage test: ${total} messages, ${total - atOutage} enqueued during/after the 5 s outage, ${buffered} buffered when the broker came back; ` +
        `deliver() results: ${results.join(', ')}; outbox stats ${JSON.stringify(outbox.stats())}`,
    );
    expect(buffered).toBeGreaterThanOrEqual(90);
    expect(sub.seqs).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(outbox.stats()).toMatchObject({ queued: 0, sent: total, dropped: { prediction: 0, event: 0, status: 0 } });
    expect(results).toContain('failed'); // the first send after the broker went away
    await outbox.stop();
    await client.endAsync();
    await sub.client.endAsync();
  });

  it('with the disk store, a daemon restart during the outage loses nothing', async () => {
    const topic = 'ec/restart/cam/prediction';
    const path = join(tempDir(), 'outbox.log');
    const sub = await subscriber(broker.url, topic);
    let seq = 0;
    /** One daemon lifetime: an outbox on the same file, a publisher, 20 msg/s for `ms`. */
    const run = async (ms: number, beforeStop?: (outbox: Outbox) => Promise<void>): Promise<void> => {
      const outbox = new Outbox({ logger, clock, config: { max_messages: 1000, disk: { path, max_bytes: 1e7, fsync: 'interval' } } });
      await outbox.start();
      const client = connect(broker.url, { clean: true, reconnectPeriod: 300, connectTimeout: 2000, queueQoSZero: false });
      client.on('error', () => undefined);
      client.on('connect', () => void sub.ready().then(() => outbox.deliver(sender(client))));
      const timer = setInterval(() => outbox.enqueue(prediction(topic, seq++)), 50);
      await clock.sleep(ms);
      clearInterval(timer);
      await beforeStop?.(outbox);
      // The daemon's stop: end MQTT (waiting for PUBACKs in flight), then write the outbox out.
      await client.endAsync();
      await outbox.stop();
    };
    await run(1000, async (outbox) => {
      // Between two messages, none in flight (see the outage test).
      await until(() => sub.seqs.length === seq && outbox.stats().queued === 0, 2000, 'the first messages');
      await broker.stop();
    });
    const beforeRestart = seq;
    await run(1500); // broker down the whole time: everything stays on disk
    expect(sub.seqs).toHaveLength(beforeRestart);
    await broker.restart();
    await run(1000, () => until(() => sub.seqs.length >= seq, 10_000, 'the backlog'));
    await clock.sleep(300);
    expect(sub.seqs).toEqual(Array.from({ length: seq }, (_, i) => i));
    await sub.client.endAsync();
  });
});
