import { describe, expect, it } from 'vitest';
import { RetainedQuota } from '../../src/mqtt/broker/retained-quota.js';
import { BrokerAuth, internalCredentials } from '../../src/mqtt/broker/broker-auth.js';
import { ownTopics } from '../../src/mqtt/broker/own-topics.js';
import { LogLimiter } from '../../src/mqtt/broker/log-limiter.js';

describe('RetainedQuota', () => {
  it('admits new topics up to the count, then refuses new ones but still updates and clears held ones', () => {
    const q = new RetainedQuota({ maxMessages: 2, maxBytes: 1000 });
    expect(q.admit('a', 100)).toBe(true);
    expect(q.admit('b', 100)).toBe(true);
    expect(q.admit('c', 1)).toBe(false);
    expect(q.admit('a', 300)).toBe(true);
    expect([q.count, q.totalBytes]).toEqual([2, 400]);
    // An empty payload deletes (MQTT 3.3.1.3): the slot is free again.
    expect(q.admit('b', 0)).toBe(true);
    expect(q.admit('c', 1)).toBe(true);
    expect([q.count, q.totalBytes]).toEqual([2, 301]);
    expect(q.admit('never-held', 0)).toBe(true);
    expect(q.count).toBe(2);
  });

  it('refuses what would exceed the bytes, counting a held topic by its change; a refusal changes nothing', () => {
    const q = new RetainedQuota({ maxMessages: 100, maxBytes: 1000 });
    expect(q.admit('a', 600)).toBe(true);
    expect(q.admit('b', 401)).toBe(false);
    expect(q.admit('b', 400)).toBe(true);
    expect(q.admit('a', 601)).toBe(false);
    expect(q.admit('a', 10)).toBe(true);
    expect([q.count, q.totalBytes]).toEqual([2, 410]);
  });
});

describe('BrokerAuth', () => {
  const internal = internalCredentials();
  const pw = (s: string): Buffer => Buffer.from(s);

  it('internal credentials are fresh each time', () => {
    expect(internalCredentials()).not.toEqual(internal);
    expect(internal.password.length).toBeGreaterThanOrEqual(40);
  });

  it('knows the daemon by its internal credentials, not by its client id, and keeps its id for it', () => {
    const auth = new BrokerAuth({ internal });
    const daemon = {};
    const impostor = {};
    expect(auth.authenticate(daemon, 'edge-classifier-d', internal.username, pw(internal.password))).toEqual({ ok: true, daemon: true });
    expect(auth.isDaemon(daemon)).toBe(true);
    // Same id, no credentials: refused (it would take over the daemon's session).
    expect(auth.authenticate(impostor, 'edge-classifier-d', undefined, undefined)).toMatchObject({ ok: false, code: 2 });
    expect(auth.authenticate(impostor, 'other', internal.username, pw('guess'))).toMatchObject({ ok: false, code: 4 });
    expect(auth.authenticate(impostor, 'other', undefined, undefined)).toEqual({ ok: true, daemon: false });
    expect(auth.isDaemon(impostor)).toBe(false);
    expect(auth.isDaemon(null)).toBe(false);
  });

  it('with a user configured, refuses anonymous clients and wrong passwords or names', () => {
    const auth = new BrokerAuth({ internal, user: { username: 'ha', password: 's3cret' } });
    expect(auth.authenticate({}, 'x', undefined, undefined)).toMatchObject({ ok: false, code: 5 });
    expect(auth.authenticate({}, 'x', 'ha', undefined)).toMatchObject({ ok: false, code: 4 });
    expect(auth.authenticate({}, 'x', 'ha', pw('s3cre'))).toMatchObject({ ok: false, code: 4 });
    expect(auth.authenticate({}, 'x', 'hb', pw('s3cret'))).toMatchObject({ ok: false, code: 4 });
    expect(auth.authenticate({}, 'x', 'ha', pw('s3cret'))).toEqual({ ok: true, daemon: false });
    expect(auth.authenticate({}, 'd', internal.username, pw(internal.password))).toEqual({ ok: true, daemon: true });
  });
});

describe('ownTopics', () => {
  const own = ownTopics({ baseTopic: 'edge-classifier', deviceId: 'cam-1', discoveryPrefix: 'homeassistant' });

  it("reserves the device's topics and its discovery configs, but not its request topics", () => {
    for (const t of ['edge-classifier/cam-1/status', 'edge-classifier/cam-1/yard/prediction', 'edge-classifier/cam-1/response/pause', 'edge-classifier/cam-1', 'edge-classifier/cam-1/request', 'homeassistant/sensor/edge_classifier_cam-1/yard_top/config', 'homeassistant/binary_sensor/edge_classifier_cam-1/x/config']) {
      expect(own(t), t).toBe(true);
    }
    for (const t of ['edge-classifier/cam-1/request/pause', 'edge-classifier/cam-1/request/snapshot', 'edge-classifier/cam-2/status', 'edge-classifier/cam-10/status', 'homeassistant/status', 'homeassistant/sensor/edge_classifier_cam-2/x/config', 'other/topic']) {
      expect(own(t), t).toBe(false);
    }
  });

  it('follows a base topic with a trailing slash as the daemon does', () => {
    const own2 = ownTopics({ baseTopic: 'site/a/', deviceId: 'd', discoveryPrefix: 'ha/' });
    expect(own2('site/a/d/status')).toBe(true);
    expect(own2('site/a/d/request/x')).toBe(false);
    expect(own2('ha/sensor/edge_classifier_d/o/config')).toBe(true);
  });
});

describe('LogLimiter', () => {
  it('lets one line per kind and interval through and says how many it left out', () => {
    let now = 0;
    const limiter = new LogLimiter(10_000, () => now);
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeUndefined();
    expect(limiter.take('b')).toBe(0);
    now = 5_000;
    expect(limiter.take('a')).toBeUndefined();
    now = 10_001;
    expect(limiter.take('a')).toBe(2);
    expect(limiter.take('a')).toBeUndefined();
  });
});
