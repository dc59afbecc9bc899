import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigSchema } from '../../src/config/schema.js';
import { configJsonSchema } from '../../src/config/load.js';
import { RUNTIME_KEYS } from '../../src/config/config-diff.js';
import { RELOAD_AT_RUNTIME, runtimeKeyPaths } from '../../src/config/reload-marks.js';

// The keys a reload applies without a restart are marked in the config schema; RUNTIME_KEYS
// (config-diff.ts) is read from those marks.

describe('reload marks', () => {
  it('mark exactly the keys a SIGHUP applies', () => {
    expect([...RUNTIME_KEYS].sort()).toEqual(['cameras', 'log.level', 'publish', 'shutdown_timeout_ms', 'stats_interval', 'watch']);
    expect(runtimeKeyPaths(ConfigSchema)).toEqual(RUNTIME_KEYS);
  });

  it('are found through defaults and optionals, nested, and cover what is below them', () => {
    const schema = z.object({
      a: z.number().meta(RELOAD_AT_RUNTIME),
      b: z.object({ c: z.string().default('x').meta(RELOAD_AT_RUNTIME), d: z.string() }).default({ c: 'x', d: 'y' }),
      e: z.object({ f: z.string().meta(RELOAD_AT_RUNTIME) }).optional().meta(RELOAD_AT_RUNTIME),
      g: z.object({ h: z.object({ i: z.boolean().optional().meta(RELOAD_AT_RUNTIME) }) }),
      j: z.array(z.object({ k: z.number().meta(RELOAD_AT_RUNTIME) })),
      l: z.string().describe('restart only'),
    });
    expect(runtimeKeyPaths(schema)).toEqual(['a', 'b.c', 'e', 'g.h.i']);
  });

  it('show in the config JSON Schema, and only on the marked keys', () => {
    const schema = configJsonSchema(z) as { properties: Record<string, { reload?: string; properties?: Record<string, { reload?: string }> }> };
    expect(schema.properties.publish?.reload).toBe('runtime');
    expect(schema.properties.log?.properties?.level?.reload).toBe('runtime');
    expect(schema.properties.log?.reload).toBeUndefined();
    expect(schema.properties.mqtt?.reload).toBeUndefined();
    expect(schema.properties.model?.reload).toBeUndefined();
  });
});
