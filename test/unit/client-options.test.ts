import { describe, expect, it } from 'vitest';
import { reconnectDelay } from '../../src/mqtt/client-options.js';

// The MQTT client's reconnect backoff: client-options.ts owns it, MqttPublisher sets it as
// MQTT.js's reconnectPeriod before each attempt.
describe('reconnectDelay', () => {
  it('doubles from 1 s to the cap, with up to 30% jitter below it', () => {
    expect([0, 1, 2, 3, 10].map((a) => reconnectDelay(a, 8_000, () => 1))).toEqual([1_000, 2_000, 4_000, 8_000, 8_000]);
    expect(reconnectDelay(2, 8_000, () => 0)).toBe(2_800);
    expect(reconnectDelay(0, 8_000, () => 0.5)).toBe(850);
  });

  it('stays at the cap after any number of attempts (no overflow to Infinity or NaN)', () => {
    expect(reconnectDelay(1_000_000, 60_000, () => 1)).toBe(60_000);
    expect(reconnectDelay(Number.MAX_SAFE_INTEGER, 60_000, () => 0)).toBe(42_000);
  });

  it('with Math.random, every delay lies in [70%, 100%] of its step', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const step = Math.min(30_000, 1_000 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const d = reconnectDelay(attempt, 30_000);
        expect(d).toBeGreaterThanOrEqual(Math.round(step * 0.7));
        expect(d).toBeLessThanOrEqual(step);
      }
    }
  });
});
