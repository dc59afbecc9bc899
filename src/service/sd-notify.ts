import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { Logger } from '../core/logger.js';

/**
 * systemd's notification protocol (sd_notify(3)): newline-separated KEY=VALUE datagrams sent
 * to the AF_UNIX socket named by $NOTIFY_SOCKET. Node has no AF_UNIX datagram socket, hence
 * the optional native module unix-dgram, loaded only when a socket is actually given.
 */

/** Where $NOTIFY_SOCKET points, as far as unix-dgram can reach it. */
export type NotifyAddress = { kind: 'none' } | { kind: 'path'; path: string } | { kind: 'unsupported'; reason: string };

// sockaddr_un.sun_path holds 108 bytes including the terminating NUL. unix-dgram strncpy()s the
// path into it and would silently truncate a longer one, sending to some other socket.
const SUN_PATH_MAX = 107;

export function parseNotifySocket(value: string | undefined): NotifyAddress {
  if (value === undefined || value === '') return { kind: 'none' };
  if (value.startsWith('@')) {
    // Abstract sockets need a leading NUL byte and an exact address length; unix-dgram copies
    // the address with strncpy() (stops at the NUL) and always passes sizeof(sockaddr_un).
    return {
      kind: 'unsupported',
      reason: `NOTIFY_SOCKET=${value} is an abstract socket, which unix-dgram cannot address (it only takes file system paths)`,
    };
  }
  if (!value.startsWith('/')) {
    return { kind: 'unsupported', reason: `NOTIFY_SOCKET=${value} is not an absolute path (vsock: and other transports are not supported)` };
  }
  if (Buffer.byteLength(value) > SUN_PATH_MAX) {
    return { kind: 'unsupported', reason: `NOTIFY_SOCKET is ${Buffer.byteLength(value)} bytes long; an AF_UNIX path holds at most ${SUN_PATH_MAX}` };
  }
  return { kind: 'path', path: value };
}

export type WatchdogSetting =
  | { kind: 'off' }
  | { kind: 'on'; usec: number }
  /** WATCHDOG_PID names another process (e.g. a wrapper that exec'd us kept the variables). */
  | { kind: 'other-process'; pid: number }
  | { kind: 'invalid'; reason: string };

/** $WATCHDOG_USEC / $WATCHDOG_PID read the way sd_watchdog_enabled(3) reads them. */
export function parseWatchdog(env: NodeJS.ProcessEnv, pid: number): WatchdogSetting {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || usecText === '') return { kind: 'off' };
  const usec = /^\d+$/.test(usecText) ? Number(usecText) : NaN;
  if (!Number.isSafeInteger(usec) || usec <= 0) return { kind: 'invalid', reason: `WATCHDOG_USEC=${usecText} is not a positive whole number of microseconds` };
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined && pidText !== '') {
    const watched = /^\d+$/.test(pidText) ? Number(pidText) : NaN;
    if (!Number.isSafeInteger(watched) || watched <= 0) return { kind: 'invalid', reason: `WATCHDOG_PID=${pidText} is not a process id` };
    if (watched !== pid) return { kind: 'other-process', pid: watched };
  }
  return { kind: 'on', usec };
}

/** The part of unix-dgram this module uses (it ships no type declarations). */
export interface UnixDgramSocket {
  on(event: 'error', listener: (err: Error) => void): unknown;
  send(buf: Buffer, offset: number, length: number, path: string, callback: (err?: Error) => void): void;
  close(): void;
}

export interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): UnixDgramSocket;
}

export interface SdNotifierDeps {
  /** NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** This process's id: the watchdog applies only when WATCHDOG_PID is unset or equal to it. */
  pid: number;
  /** Loads unix-dgram; the real module unless a test injects another. */
  loadDgram?: () => UnixDgramModule;
}

const loadUnixDgram = (): UnixDgramModule => createRequire(import.meta.url)('unix-dgram') as UnixDgramModule;

/**
 * Sends notifications to systemd, or nothing when not started by it (no NOTIFY_SOCKET) or when
 * the socket cannot be used (logged once, at start). Never throws: a lost notification must not
 * take the daemon down; systemd's timeouts are what acts on missing ones.
 */
export class SdNotifier {
  private socket: UnixDgramSocket | undefined;
  private path: string | undefined;
  private watchdog: number | undefined;
  /** The last send error, so a dead socket logs once rather than at every ping. */
  private failing: string | undefined;

  constructor(private readonly deps: SdNotifierDeps) {}

  /** Whether notifications go anywhere. */
  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** The watchdog timeout systemd enforces (µs), when it is meant for this process and notifications work. */
  get watchdogUsec(): number | undefined {
    return this.socket ? this.watchdog : undefined;
  }

  async start(): Promise<void> {
    const { env, logger } = this.deps;
    const address = parseNotifySocket(env.NOTIFY_SOCKET);
    if (address.kind === 'none') {
      logger.debug('NOTIFY_SOCKET not set: not started by systemd with Type=notify; no notifications');
      return;
    }
    if (address.kind === 'unsupported') {
      logger.error({ reason: address.reason }, 'sd_notify disabled: systemd will get no READY=1 or WATCHDOG=1 (a Type=notify start times out)');
      return;
    }
    let socket: UnixDgramSocket;
    try {
      socket = (this.deps.loadDgram ?? loadUnixDgram)().createSocket('unix_dgram');
    } catch (err) {
      logger.error(
        { err: (err as Error).message },
        'sd_notify disabled: the optional native module unix-dgram is missing or failed to build for this platform; ' +
          'systemd will get no READY=1 or WATCHDOG=1 (a Type=notify start times out). Rebuild it (npm rebuild unix-dgram) or use Type=exec without WatchdogSec',
      );
      return;
    }
    socket.on('error', (err) => this.failed(err));
    this.socket = socket;
    this.path = address.path;

    const watchdog = parseWatchdog(env, this.deps.pid);
    if (watchdog.kind === 'on') this.watchdog = watchdog.usec;
    else if (watchdog.kind === 'invalid') logger.warn({ reason: watchdog.reason }, 'systemd watchdog settings ignored');
    else if (watchdog.kind === 'other-process') logger.debug({ watchdogPid: watchdog.pid }, 'WATCHDOG_PID names another process; no watchdog pings from this one');
    logger.info({ socket: address.path, watchdogUsec: this.watchdog ?? null }, 'sd_notify enabled');
    await Promise.resolve();
  }

  /** Sends one datagram with `fields` (e.g. { READY: '1', STATUS: '...' }); a no-op when disabled. */
  notify(fields: Record<string, string>): void {
    const { socket, path } = this;
    if (!socket || !path) return;
    // One field per line: a newline inside a value would start a bogus field.
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`)
      .join('\n');
    const buf = Buffer.from(text);
    try {
      socket.send(buf, 0, buf.length, path, (err) => {
        if (err) this.failed(err);
        else if (this.failing !== undefined) {
          this.failing = undefined;
          this.deps.logger.info({ socket: path }, 'sd_notify: sending works again');
        }
      });
    } catch (err) {
      this.failed(err as Error);
    }
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    try {
      socket?.close();
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, 'sd_notify: closing the socket failed');
    }
    await Promise.resolve();
  }

  private failed(err: Error): void {
    const message = describeError(err);
    if (message === this.failing) return;
    this.failing = message;
    // Typically systemd is gone (ECONNREFUSED/ENOENT) or its queue is full ("congestion").
    this.deps.logger.error({ socket: this.path, err: message }, 'sd_notify: cannot send to systemd');
  }
}

/** unix-dgram reports errors as "send -111"; name the errno so the log says ECONNREFUSED. */
function describeError(err: Error): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'number' || code >= 0) return err.message;
  const name = Object.entries(constants.errno).find(([, n]) => n === -code)?.[0];
  return name ? `${err.message.replace(/-?\d+$/, '').trim()} ${name}`.trim() : err.message;
}
