import type { NetworkInterfaceInfo } from 'node:os';
import { HOST_VALUE } from '../../config/http-schema.js';

// The Host header check that defeats DNS rebinding: a page on evil.example whose name is made
// to resolve to 127.0.0.1 (or to the camera's LAN address) is same-origin with its own name,
// so the browser lets it read whatever this server answers. The one thing it cannot forge is
// the Host header: the browser always sends the name from the URL. So only names that mean
// this machine are answered.

/** A Host header value, canonical: lowercase, IPv6 in brackets and compressed, no trailing dot; port undefined when none was given. */
export interface HostName {
  name: string;
  port: number | undefined;
}

/** Parses a Host header (or an allowed_hosts entry); undefined when it is not a plain host[:port]. */
export function parseHost(text: string): HostName | undefined {
  // The pattern first: the URL parser below would accept "user@host" or "host/path" too.
  if (!HOST_VALUE.test(text)) return undefined;
  let url: URL;
  try {
    // WHATWG URL canonicalises the way browsers do before they send Host: case, IPv6
    // compression, IPv4 forms (127.1 is 127.0.0.1). It drops port 80, the default.
    url = new URL(`http://${text}/`);
  } catch {
    return undefined;
  }
  const name = url.hostname.endsWith('.') ? url.hostname.slice(0, -1) : url.hostname;
  const explicit = /:(\d+)$/.exec(text.startsWith('[') ? text.slice(text.indexOf(']')) : text);
  return { name, port: explicit ? Number(explicit[1]) : undefined };
}

/** The listen address as it appears in a Host header (IPv6 in brackets), canonical. */
function canonicalAddress(address: string): string | undefined {
  return parseHost(address.includes(':') ? `[${address}]` : address)?.name;
}

export function isLoopback(name: string): boolean {
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

function isWildcard(name: string): boolean {
  return name === '0.0.0.0' || name === '[::]';
}

export interface MachineNames {
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>;
  hostname: string;
}

/**
 * The names that mean this server when it listens on `listenHost`: the address itself; on
 * loopback, the loopback names (a browser through `ssh -L 8089:127.0.0.1:8089` sends
 * localhost:8089); on 0.0.0.0 or ::, every interface address, the hostname and its mDNS
 * name (HOSTNAME.local, how a Pi is usually reached). A wildcard itself is not a name.
 */
export function ownNames(listenHost: string, machine: MachineNames): Set<string> {
  const listen = canonicalAddress(listenHost);
  const names = new Set<string>();
  if (listen && !isWildcard(listen)) names.add(listen);
  if (listen && isLoopback(listen)) for (const n of ['127.0.0.1', '[::1]', 'localhost']) names.add(n);
  if (listen && isWildcard(listen)) {
    names.add('localhost');
    for (const infos of Object.values(machine.interfaces)) {
      for (const info of infos ?? []) {
        const name = canonicalAddress(info.address);
        if (name) names.add(name);
      }
    }
    const host = parseHost(machine.hostname)?.name;
    if (host) {
      names.add(host);
      if (!host.includes('.')) names.add(`${host}.local`);
    }
  }
  return names;
}

export interface HostRules {
  /** Names of this server; they must come with its port (none: port 80). */
  own: ReadonlySet<string>;
  port: number;
  /** http.allowed_hosts: a name without a port allows any port (a reverse proxy, a tunnel to another local port). */
  extra: readonly HostName[];
}

/** Whether a request's Host header names this server. A missing one (HTTP/1.0) is refused: nothing says where it was meant to go. */
export function hostAllowed(header: string | undefined, rules: HostRules): boolean {
  if (header === undefined) return false;
  const host = parseHost(header);
  if (!host) return false;
  const port = host.port ?? 80;
  if (rules.own.has(host.name) && port === rules.port) return true;
  return rules.extra.some((e) => e.name === host.name && (e.port === undefined || e.port === port));
}

/** The 421 body: short, and without the list of allowed names (an attacker's page can read it, and this machine's addresses are none of its business). */
export function misdirectedText(header: string | undefined): string {
  const what = header === undefined ? 'a request without a Host header' : `the name ${JSON.stringify(header.slice(0, 100))}`;
  return `421 Misdirected Request: this server does not answer to ${what}. If that is a name of this machine, add it to http.allowed_hosts in the edge-classifier config.\n`;
}
