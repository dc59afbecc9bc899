import { describe, expect, it } from 'vitest';
import type { NetworkInterfaceInfo } from 'node:os';
import { hostAllowed, misdirectedText, ownNames, parseHost, type HostRules } from '../../src/service/http/host-check.js';
import { HttpSchema } from '../../src/config/http-schema.js';

// The Host check that defeats DNS rebinding, as pure functions: parsing, the names a listen
// address implies, and the verdict.

const iface = (address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo =>
  ({ address, family, netmask: '', mac: '00:00:00:00:00:00', internal: false, cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;
const MACHINE = {
  interfaces: { lo: [iface('127.0.0.1', 'IPv4'), iface('::1', 'IPv6')], eth0: [iface('192.168.1.20', 'IPv4'), iface('FD00:0:0:0::20', 'IPv6')] },
  hostname: 'Pi-Door',
};

describe('parseHost', () => {
  it.each([
    ['localhost:8089', { name: 'localhost', port: 8089 }],
    ['LOCALHOST', { name: 'localhost', port: undefined }],
    ['127.0.0.1:80', { name: '127.0.0.1', port: 80 }],
    ['127.1:8089', { name: '127.0.0.1', port: 8089 }],
    ['[::1]:8089', { name: '[::1]', port: 8089 }],
    ['[0:0:0:0:0:0:0:1]', { name: '[::1]', port: undefined }],
    ['camera.local.:8089', { name: 'camera.local', port: 8089 }],
  ])('%s', (text, want) => expect(parseHost(text)).toEqual(want));

  it.each([['evil.example@127.0.0.1:8089'], ['127.0.0.1/x'], ['127.0.0.1:99999'], ['a b'], [''], ['::1'], ['[::1'], ['host:'], ['ex%61mple.com'], ['ünï.example']])(
    'refuses %j',
    (text) => expect(parseHost(text)).toBeUndefined(),
  );
});

describe('ownNames', () => {
  it('on loopback: the address and the loopback names, nothing of the network', () => {
    expect([...ownNames('127.0.0.1', MACHINE)].sort()).toEqual(['127.0.0.1', '[::1]', 'localhost']);
    expect([...ownNames('::1', MACHINE)].sort()).toEqual(['127.0.0.1', '[::1]', 'localhost']);
  });

  it('on a wildcard: every interface address, the hostname and its .local name, not the wildcard itself', () => {
    expect([...ownNames('0.0.0.0', MACHINE)].sort()).toEqual(['127.0.0.1', '192.168.1.20', '[::1]', '[fd00::20]', 'localhost', 'pi-door', 'pi-door.local']);
    expect(ownNames('::', MACHINE).has('[::]')).toBe(false);
  });

  it('on one address: that address only', () => {
    expect([...ownNames('192.168.1.20', MACHINE)]).toEqual(['192.168.1.20']);
  });
});

describe('hostAllowed', () => {
  const rules: HostRules = {
    own: ownNames('127.0.0.1', MACHINE),
    port: 8089,
    extra: [parseHost('camera.local')!, parseHost('proxy.lan:443')!],
  };

  it.each(['127.0.0.1:8089', 'localhost:8089', '[::1]:8089', 'Camera.Local:8089', 'camera.local', 'proxy.lan:443'])('allows %s', (h) =>
    expect(hostAllowed(h, rules)).toBe(true),
  );

  it.each([
    ['evil.example:8089', 'a rebinding name'],
    ['evil.example', 'without a port'],
    ['127.0.0.1:9999', 'an own name with another port'],
    ['localhost', 'an own name with no port (80) while listening on 8089'],
    ['proxy.lan:8089', 'an allowed name with another port than the one listed'],
    ['localhost:8089@evil.example', 'userinfo tricks'],
    [undefined, 'no Host header (HTTP/1.0)'],
  ])('refuses %s (%s)', (h: string | undefined, _why: string) => expect(hostAllowed(h, rules)).toBe(false));

  it('takes port 80 for a Host without one', () => {
    expect(hostAllowed('localhost', { ...rules, port: 80 })).toBe(true);
  });
});

it('the 421 text names the setting and not the allowed names', () => {
  const text = misdirectedText('evil.example:8089');
  expect(text).toContain('http.allowed_hosts');
  expect(text).toContain('"evil.example:8089"');
  expect(text).not.toContain('127.0.0.1');
  expect(misdirectedText(undefined)).toContain('without a Host header');
});

it('http.allowed_hosts refuses what is not a host name, naming the key', () => {
  const bad = HttpSchema.safeParse({ allowed_hosts: ['camera.local', 'http://camera.local/'] });
  expect(bad.success).toBe(false);
  expect(bad.error?.issues[0]?.path).toEqual(['allowed_hosts', 1]);
  expect(HttpSchema.parse({ allowed_hosts: ['camera.local', '[fd00::20]:8089'] }).allowed_hosts).toHaveLength(2);
  expect(HttpSchema.safeParse({ auth: {} }).error?.issues[0]?.message).toBe('set token_file, basic_file or both (or remove http.auth)');
});
