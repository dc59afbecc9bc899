import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { pino } from 'pino';
import { HttpAuth, hashPassword, parseScrypt, sameSecret, type BasicUser } from '../../src/service/http/http-auth.js';
import { loadCredentials, parseBasicFile, parseToken } from '../../src/service/http/auth-files.js';
import { AccessGate } from '../../src/service/http/access-gate.js';
import { ConfigError } from '../../src/config/load.js';
import { REPO } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';

// Credentials for the HTTP server (bearer token, scrypt basic auth) and the gate that asks for
// them after the Host check.

const FAST = { N: 1024, r: 8, p: 1 };
const TOKEN = 'a'.repeat(20) + 'token';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function users(entries: Record<string, string>): Promise<Map<string, BasicUser>> {
  const map = new Map<string, BasicUser>();
  for (const [u, p] of Object.entries(entries)) map.set(u, parseScrypt(await hashPassword(p, FAST)));
  return map;
}

describe('HttpAuth', () => {
  it('accepts the bearer token and refuses anything else', async () => {
    const auth = new HttpAuth({ token: TOKEN });
    expect(await auth.check(`Bearer ${TOKEN}`)).toBe('ok');
    expect(await auth.check(`bearer  ${TOKEN}`)).toBe('ok');
    expect(await auth.check(`Bearer ${TOKEN}x`)).toBe('denied');
    expect(await auth.check(`Bearer ${TOKEN.slice(1)}`)).toBe('denied');
    expect(await auth.check(undefined)).toBe('denied');
    expect(await auth.check('Bearer')).toBe('denied');
    // Basic is not configured: a right-looking basic header is no way in.
    expect(await auth.check(basic('x', TOKEN))).toBe('denied');
    expect(auth.challenges()).toEqual(['Bearer realm="edge-classifier"']);
    expect(sameSecret('abc', 'abcd')).toBe(false);
  });

  it('checks basic credentials against scrypt hashes', async () => {
    const auth = new HttpAuth({ users: await users({ alice: 'correct horse', bob: 'pa:ss' }) });
    expect(await auth.check(basic('alice', 'correct horse'))).toBe('ok');
    expect(await auth.check(basic('bob', 'pa:ss'))).toBe('ok');
    expect(await auth.check(basic('alice', 'wrong'))).toBe('denied');
    expect(await auth.check(basic('carol', 'correct horse'))).toBe('denied');
    expect(await auth.check('Basic !!!')).toBe('denied');
    expect(await auth.check(`Bearer ${TOKEN}`)).toBe('denied');
    expect(auth.challenges()).toEqual(['Basic realm="edge-classifier", charset="UTF-8"']);
  });

  it('remembers verified credentials for ten minutes, not longer', async () => {
    let now = 0;
    const map = await users({ alice: 'pw' });
    const auth = new HttpAuth({ users: map }, () => now);
    expect(await auth.check(basic('alice', 'pw'))).toBe('ok');
    map.delete('alice'); // only the cache can say ok now
    now += 9 * 60_000;
    expect(await auth.check(basic('alice', 'pw'))).toBe('ok');
    now += 2 * 60_000;
    expect(await auth.check(basic('alice', 'pw'))).toBe('denied');
  });

  it('runs one scrypt at a time and turns away a flood beyond 16 waiting', async () => {
    const auth = new HttpAuth({ users: await users({ alice: 'pw' }) });
    const verdicts = await Promise.all(Array.from({ length: 20 }, (_, i) => auth.check(basic('alice', `wrong${i}`))));
    expect(verdicts.filter((v) => v === 'busy')).toHaveLength(4);
    expect(verdicts.filter((v) => v === 'denied')).toHaveLength(16);
    // Once drained, checks go through again.
    expect(await auth.check(basic('alice', 'pw'))).toBe('ok');
  });
});

describe('auth files', () => {
  it('token_file: trimmed, long enough, one word', () => {
    expect(parseToken(`${TOKEN}\n`)).toBe(TOKEN);
    expect(() => parseToken('short\n')).toThrow('the token is 5 characters; use at least 16 (e.g. openssl rand -hex 32)');
    expect(() => parseToken(`${TOKEN} ${TOKEN}`)).toThrow('one word');
  });

  it('basic_file: scrypt lines, comments, and errors that name the line', async () => {
    const line = `alice:${await hashPassword('pw', FAST)}`;
    expect([...parseBasicFile(`# users\n\n${line}\n`).keys()]).toEqual(['alice']);
    expect(() => parseBasicFile('alice:secret\n')).toThrow('line 1 (alice): expected user:$scrypt$N=16384,r=8,p=1$SALT$HASH (plain-text passwords are not accepted)');
    expect(() => parseBasicFile(`${line}\n${line}\n`)).toThrow('line 2: user "alice" is listed twice');
    expect(() => parseBasicFile(`${line.replace('N=1024', 'N=1000')}\n`)).toThrow('line 1 (alice): N=1000: expected a power of two');
    expect(() => parseBasicFile(`${line.replace('N=1024', 'N=1048576').replace('r=8', 'r=32')}\n`)).toThrow('needs 4096 MiB per check; at most 256');
    expect(() => parseBasicFile('# nobody\n')).toThrow('no users in it');
  });

  it('a missing or bad file is a ConfigError naming the key', async () => {
    const dir = tempDir('ec-auth-');
    const err = await loadCredentials({ token_file: join(dir, 'nope') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^http\.auth\.token_file: cannot read .*nope: ENOENT/)]);
    writeFileSync(join(dir, 'users'), 'alice:plain\n');
    const bad = (await loadCredentials({ basic_file: join(dir, 'users') }).catch((e: unknown) => e)) as ConfigError;
    expect(bad.problems[0]).toMatch(/^http\.auth\.basic_file: .*users: line 1 \(alice\): expected user:\$scrypt\$/);
    expect(await loadCredentials(undefined)).toBeUndefined();
  });

  it('the command in docs/operations.md makes a line the daemon accepts', async () => {
    const doc = readFileSync(join(REPO, 'docs/operations.md'), 'utf8');
    const script = /node -e '([^']+)' alice/.exec(doc)?.[1];
    expect(script).toBeDefined();
    const out = execFileSync(process.execPath, ['-e', script!, 'alice'], { env: { PW: 'secret' }, encoding: 'utf8' });
    const map = parseBasicFile(out);
    expect(map.get('alice')?.params).toEqual({ N: 16_384, r: 8, p: 1 });
    expect(await new HttpAuth({ users: map }).check(basic('alice', 'secret'))).toBe('ok');
  });
});

describe('AccessGate', () => {
  const clock = { now: () => 0, monotonic: () => t, sleep: () => Promise.resolve() };
  let t = 0;
  const logs: { level: number; msg: string; host?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as (typeof logs)[number]) });
  const req = (host: string | undefined, authorization?: string) =>
    ({ headers: { ...(host !== undefined ? { host } : {}), ...(authorization ? { authorization } : {}) }, url: '/x', socket: { remoteAddress: '127.0.0.1' } }) as IncomingMessage;

  it('refuses other hosts with 421 before asking for credentials; /healthz is host-checked but open', async () => {
    const gate = new AccessGate({ logger, clock, config: { host: '127.0.0.1', allowed_hosts: ['camera.local'] }, auth: new HttpAuth({ token: TOKEN }), port: () => 8089 });
    expect(gate.exposed).toBe(false);
    expect(await gate.check(req('evil.example:8089', `Bearer ${TOKEN}`), false)).toMatchObject({ status: 421 });
    expect(await gate.check(req('evil.example:8089'), true)).toMatchObject({ status: 421 });
    expect(await gate.check(req(undefined), true)).toMatchObject({ status: 421 });
    const denied = await gate.check(req('localhost:8089'), false);
    expect(denied).toMatchObject({ status: 401, headers: { 'www-authenticate': ['Bearer realm="edge-classifier"'] } });
    expect(await gate.check(req('localhost:8089'), true)).toBeUndefined();
    expect(await gate.check(req('camera.local:8089', `Bearer ${TOKEN}`), false)).toBeUndefined();
    expect(logs.filter((l) => l.level === 40).map((l) => l.host)).toEqual(['evil.example:8089', null]);
  });

  it('on 0.0.0.0, learns interface addresses that appear later (at most every 10 s)', async () => {
    let addresses = ['192.168.1.20'];
    const machine = () => ({ interfaces: { eth0: addresses.map((address) => ({ address }) as never) }, hostname: 'pi' });
    const gate = new AccessGate({ logger, clock, config: { host: '0.0.0.0', allowed_hosts: [] }, auth: undefined, port: () => 8089, machine });
    expect(gate.exposed).toBe(true);
    expect(await gate.check(req('pi.local:8089'), false)).toBeUndefined();
    expect(await gate.check(req('192.168.1.20:8089'), false)).toBeUndefined();
    addresses = ['10.0.0.7'];
    expect(await gate.check(req('10.0.0.7:8089'), false)).toMatchObject({ status: 421 });
    t += 10_000;
    expect(await gate.check(req('10.0.0.7:8089'), false)).toBeUndefined();
    expect(await gate.check(req('192.168.1.20:8089'), false)).toMatchObject({ status: 421 });
  });
});
