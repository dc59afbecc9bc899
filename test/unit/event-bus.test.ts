import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/core/event-bus.js';
import { createLogger } from '../../src/core/logger.js';

interface Events {
  added: { camera: string };
  ticked: number;
}

function bus() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', stream: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { events: new EventBus<Events>({ logger }), lines };
}

describe('EventBus', () => {
  it('delivers each event\'s payload to its own listeners, in the order they were added', () => {
    const { events } = bus();
    const heard: string[] = [];
    const a = {};
    const b = {};
    events.on('added', a, ({ camera }) => heard.push(`a ${camera}`));
    events.on('ticked', a, (n) => heard.push(`a tick ${n + 1}`));
    events.on('added', b, ({ camera }) => heard.push(`b ${camera}`));
    events.emit('added', { camera: 'gate' });
    events.emit('ticked', 41);
    expect(heard).toEqual(['a gate', 'b gate', 'a tick 42']);
  });

  it('removes every listener of one owner, and only those', () => {
    const { events } = bus();
    const heard: string[] = [];
    const a = {};
    const b = {};
    events.on('added', a, () => heard.push('a added'));
    events.on('ticked', a, () => heard.push('a ticked'));
    events.on('added', b, () => heard.push('b added'));
    events.removeListeners(a);
    events.removeListeners({}); // an owner without listeners: nothing happens
    events.emit('added', { camera: 'gate' });
    events.emit('ticked', 1);
    expect(heard).toEqual(['b added']);
    // An owner may listen again after its removal (a part started anew).
    events.on('ticked', a, () => heard.push('a again'));
    events.emit('ticked', 2);
    expect(heard).toEqual(['b added', 'a again']);
  });

  it('logs a listener that throws; the others still run and emit does not throw', () => {
    const { events, lines } = bus();
    const heard: string[] = [];
    events.on('added', {}, () => heard.push('first'));
    events.on('added', {}, () => {
      throw new Error('broken part');
    });
    events.on('added', {}, () => heard.push('third'));
    expect(() => events.emit('added', { camera: 'gate' })).not.toThrow();
    expect(heard).toEqual(['first', 'third']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, event: 'added', err: 'broken part', msg: 'event listener failed' });
  });

  it('a listener removed while an event is delivered still hears that one event, not the next', () => {
    const { events } = bus();
    const heard: string[] = [];
    const b = {};
    events.on('ticked', {}, () => events.removeListeners(b));
    events.on('ticked', b, (n) => heard.push(`b ${n}`));
    events.emit('ticked', 1);
    events.emit('ticked', 2);
    expect(heard).toEqual(['b 1']);
  });
});
