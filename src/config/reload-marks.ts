import { z } from 'zod';

// Which configuration keys a reload (SIGHUP, `systemctl reload`) applies while running, marked
// on the keys' schemas as zigbee2mqtt marks `requiresRestart` in its settings schema, but the
// other way round: a key needs a restart unless marked, so a setting added later is never
// silently ignored on reload. The mark is zod metadata, so `edge-classifier config schema`
// shows it too ("reload": "runtime").

/** `.meta(RELOAD_AT_RUNTIME)` on a key's schema: a reload applies a change under it. */
export const RELOAD_AT_RUNTIME = { reload: 'runtime' } as const;

/**
 * Dotted paths of the marked keys (`publish`, `log.level`), in schema order. Nested objects
 * are searched through their defaults and optionals; lists are not (a mark covers a list as a
 * whole), and nothing below a mark is looked at (a mark covers everything under it).
 */
export function runtimeKeyPaths(schema: z.core.$ZodType, prefix = ''): string[] {
  const layers = unwrap(schema);
  if (layers.some(isMarked)) return prefix ? [prefix] : [];
  const object = layers.find((l) => l instanceof z.core.$ZodObject);
  if (!object) return [];
  return Object.entries(object._zod.def.shape).flatMap(([key, child]) => runtimeKeyPaths(child, prefix ? `${prefix}.${key}` : key));
}

function isMarked(schema: z.core.$ZodType): boolean {
  return z.globalRegistry.get(schema)?.reload === RELOAD_AT_RUNTIME.reload;
}

/** The schema and the ones it wraps (default, optional, ...), outermost first: a mark may sit on any. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType[] {
  const layers = [schema];
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
    s = s.unwrap();
    layers.push(s);
  }
  return layers;
}
