import { afterEach, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseNotifySocket, parseWatchdog, SdNotifier, type UnixDgramModule, type UnixDgramSocket } from '../../src/service/sd-notify.js';
import { tempDir } from '../helpers/fixtures.js';

describe('parseNotifySocket', () => {
  it('no variable: no notifications', () => {
    expect(parseNotifySocket(undefined)).toEqual({ kind: 'none' });
    expect(parseNotifySocket('')).toEqual({ kind: 'none' });
  });

  it('a path socket, as systemd gives services (/run/systemd/notify)', () => {
    expect(parseNotifySocket('/run/systemd/notify')).toEqual({ kind: 'path', path: '/run/systemd/notify' });
  });

  it('an abstract socket is refused with the reason: unix-dgram cannot address one', () => {
    const a = parseNotifySocket('@/org/freedesktop/systemd1/notify/123');
    expect(a.kind).toBe('unsupported');
    expect(a.kind === 'unsupported' && a.reason).toMatch(/abstract socket, which unix-dgram cannot address/);
  });

  it('relative paths, vsock: and paths too long for sun_path are refused, not truncated', () => {
    expect(parseNotifySocket('run/notify').kind).toBe('unsupported');
    expect(parseNotifySocket('vsock:2:1234').kind).toBe('unsupported');
    expect(parseNotifySocket(`/${'a'.repeat(106)}`).kind).toBe('path'); // 107 bytes: fits
    const long = parseNotifySocket(`/${'a'.repeat(107)}`);
    expect(long.kind === 'unsupported' && long.reason).toMatch(/108 bytes long; an AF_UNIX path holds at most 107/);
  });
});

describe('parseWatchdog (as sd_watchdog_enabled)', () => {
  it('off without WATCHDOG_USEC', () => {
    expect(parseWatchdog({}, 42)).toEqual({ kind: 'off' });
  });

  it('on with WATCHDOG_USEC and no WATCHDOG_PID, or WATCHDOG_PID equal to our pid', () => {
    expect(parseWatchdog({ WATCHDOG_USEC: '30000000' }, 42)).toEqual({ kind: 'on', usec: 30_000_000 });
    expect(parseWatchdog({ WATCHDOG_USEC: '1000000', WATCHDOG_PID: '42' }, 42)).toEqual({ kind: 'on', usec: 1_000_000 });
  });

  it('not for us when WATCHDOG_PID names another process', () => {
    expect(parseWatchdog({ WATCHDOG_USEC: '1000000', WATCHDOG_PID: '41' }, 42)).toEqual({ kind: 'other-process', pid: 41 });
  });

  it('invalid values are reported, not guessed at', () => {
    for (const usec of ['0', '-5', '1.5', '30s', ' 100', '99999999999999999999']) {
      expect(parseWatchdog({ WATCHDOG_USEC: usec }, 42).kind, usec).toBe('invalid');
    }
    expect(parseWatchdog({ WATCHDOG_USEC: '1000', WATCHDOG_PID: 'self' }, 42)).toEqual({ kind: 'invalid', reason: 'WATCHDOG_PID=self is not a process id' });
  });
});

type LogLine = { level: number; msg: string; [k: string]: unknown };

/** pino's JSON lines, parsed. */
class LogLines {
  lines: LogLine[] = [];
  write(s: string): void {
    this.lines.push(JSON.parse(s) as LogLine);
  }
}

describe('SdNotifier', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  function notifier(env: NodeJS.ProcessEnv, loadDgram?: () => UnixDgramModule): { n: SdNotifier; sink: LogLines } {
    const sink = new LogLines();
    const n = new SdNotifier({ env, logger: pino({ level: 'debug' }, sink), pid: 42, ...(loadDgram ? { loadDgram } : {}) });
    return { n, sink };
  }

  it('without NOTIFY_SOCKET it does nothing and never loads the native module', async () => {
    let loads = 0;
    const { n } = notifier({ WATCHDOG_USEC: '1000000' }, () => {
      loads++;
      throw new Error('must not be loaded');
    });
    await n.start();
    n.notify({ READY: '1' });
    expect(n.enabled).toBe(false);
    expect(n.watchdogUsec).toBeUndefined();
    expect(loads).toBe(0);
    await n.stop();
  });

  it('when unix-dgram cannot be loaded: one clear error, then notify is a harmless no-op', async () => {
    const { n, sink } = notifier({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '1000000' }, () => {
      throw new Error("Cannot find module 'unix-dgram'");
    });
    await n.start();
    n.notify({ READY: '1' });
    n.notify({ WATCHDOG: '1' });
    expect(n.enabled).toBe(false);
    expect(n.watchdogUsec).toBeUndefined(); // no pings promised when none can be sent
    const errors = sink.lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(/unix-dgram is missing or failed to build.*Type=notify start times out/);
    expect(errors[0]?.err).toBe("Cannot find module 'unix-dgram'");
  });

  it('an abstract NOTIFY_SOCKET is logged as unsupported, without loading anything', async () => {
    const { n, sink } = notifier({ NOTIFY_SOCKET: '@notify' }, () => {
      throw new Error('must not be loaded');
    });
    await n.start();
    expect(n.enabled).toBe(false);
    expect(sink.lines.find((l) => l.level === 50)?.reason).toMatch(/abstract socket/);
  });

  it('send errors are logged once per distinct error, never thrown, and recovery is logged', async () => {
    const results: (Error | undefined)[] = [new Error('send -111'), new Error('send -111'), undefined, new Error('congestion')];
    const sent: string[] = [];
    const socket: UnixDgramSocket = {
      on: () => socket,
      send: (buf, _o, _l, _p, cb) => {
        sent.push(buf.toString());
        const err = results.shift();
        if (err) Object.assign(err, { code: err.message === 'congestion' ? 1 : -111 });
        cb(err);
      },
      close: () => undefined,
    };
    const { n, sink } = notifier({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '2000000', WATCHDOG_PID: '42' }, () => ({ createSocket: () => socket }));
    await n.start();
    expect(n.watchdogUsec).toBe(2_000_000);
    for (let i = 0; i < 4; i++) expect(() => n.notify({ WATCHDOG: '1' })).not.toThrow();
    expect(sent).toHaveLength(4);
    const logged = sink.lines.filter((l) => l.level >= 30 && String(l.msg).startsWith('sd_notify:')).map((l) => [l.msg, l.err]);
    expect(logged).toEqual([
      ['sd_notify: cannot send to systemd', 'send ECONNREFUSED'],
      ['sd_notify: sending works again', undefined],
      ['sd_notify: cannot send to systemd', 'congestion'],
    ]);
  });

  it('sends KEY=VALUE lines that a real AF_UNIX datagram socket receives; newlines in values cannot forge fields', async () => {
    const dgram = createRequire(import.meta.url)('unix-dgram') as {
      createSocket(type: 'unix_dgram', listener: (msg: Buffer) => void): { bind(path: string): void; close(): void; on(e: string, l: (err: Error) => void): void };
    };
    const path = join(tempDir('ec-sdn-'), 'notify.sock');
    const received: string[] = [];
    const receiver = dgram.createSocket('unix_dgram', (msg) => received.push(msg.toString()));
    receiver.on('error', (err) => received.push(`error: ${err.message}`));
    receiver.bind(path);
    cleanups.push(() => receiver.close());

    const { n } = notifier({ NOTIFY_SOCKET: path });
    await n.start();
    expect(n.enabled).toBe(true);
    expect(n.watchdogUsec).toBeUndefined();
    n.notify({ READY: '1', STATUS: 'classifying\nWATCHDOG=trigger' });
    await n.stop();
    n.notify({ STOPPING: '1' }); // after stop: nothing, no throw
    const deadline = Date.now() + 5_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toEqual(['READY=1\nSTATUS=classifying WATCHDOG=trigger']);
  });

  it('a socket nobody listens on: the error is logged, the caller is unaffected', async () => {
    const path = join(tempDir('ec-sdn-'), 'nobody.sock');
    const { n, sink } = notifier({ NOTIFY_SOCKET: path });
    await n.start();
    expect(() => n.notify({ READY: '1' })).not.toThrow();
    const deadline = Date.now() + 5_000;
    while (!sink.lines.some((l) => l.msg === 'sd_notify: cannot send to systemd') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sink.lines.find((l) => l.msg === 'sd_notify: cannot send to systemd')?.err).toBe('send ENOENT');
    await n.stop();
  });
});
