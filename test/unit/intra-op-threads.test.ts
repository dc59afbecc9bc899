import { describe, expect, it } from 'vitest';
import { intraOpThreadsFor } from '../../src/inference/threads.js';
import { ModelSchema } from '../../src/config/schema.js';

describe('intra-op threads', () => {
  it('auto (0) leaves one CPU for decoding and the main thread, and never goes below one', () => {
    expect(intraOpThreadsFor(0, 1)).toBe(1);
    expect(intraOpThreadsFor(0, 2)).toBe(1);
    expect(intraOpThreadsFor(0, 4)).toBe(3);
    expect(intraOpThreadsFor(0, 6)).toBe(5);
  });

  it('takes an explicit count as is, even above the CPU count', () => {
    expect(intraOpThreadsFor(2, 2)).toBe(2);
    expect(intraOpThreadsFor(8, 4)).toBe(8);
  });

  it('is what the daemon uses when the config says nothing: auto threads, no spinning', () => {
    const m = ModelSchema.parse({});
    expect(m.intra_op_threads).toBe(0);
    expect(m.intra_op_spinning).toBe(false);
    expect(ModelSchema.safeParse({ intra_op_spinning: 'no' }).success).toBe(false);
  });
});
