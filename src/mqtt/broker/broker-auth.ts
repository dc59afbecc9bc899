import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Credentials {
  username: string;
  password: string;
}

/** MQTT 3.1.1 CONNACK return codes a refusal uses. */
export type RefusalCode = 2 | 4 | 5;

export type Verdict = { ok: true; daemon: boolean } | { ok: false; code: RefusalCode; why: string };

/**
 * Fresh at every start and never written anywhere: the daemon's own client proves with them
 * that it is the daemon. A client id proves nothing (anyone may pick any), and only the
 * daemon's client may write the daemon's topics and send packets beyond max_packet_bytes.
 */
export function internalCredentials(): Credentials {
  return { username: `edge-classifier-internal-${randomBytes(8).toString('hex')}`, password: randomBytes(32).toString('base64url') };
}

/** Equal in time independent of where they differ, and of their lengths (both hashed first). */
function same(a: string | Buffer | undefined, b: string): boolean {
  const digest = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();
  return a !== undefined && timingSafeEqual(digest(a), digest(b));
}

/**
 * Who may connect to the embedded broker: the daemon's own client (internal credentials),
 * then the configured user if there is one, else anyone. The daemon's client id is kept for
 * it: a client taking it over would make the broker drop the daemon's session (MQTT-3.1.4-2),
 * again at every reconnect.
 */
export class BrokerAuth {
  private readonly daemons = new WeakSet<object>();
  private readonly daemonIds = new Set<string>();

  constructor(private readonly deps: { internal: Credentials; user?: Credentials | undefined }) {}

  /** `client` is the connection's identity for isDaemon() later. */
  authenticate(client: object, id: string, username: string | undefined, password: Buffer | undefined): Verdict {
    const { internal, user } = this.deps;
    const claimsInternal = same(username, internal.username);
    if (claimsInternal && same(password, internal.password)) {
      this.daemons.add(client);
      this.daemonIds.add(id);
      return { ok: true, daemon: true };
    }
    if (claimsInternal) return { ok: false, code: 4, why: 'bad internal password' };
    if (this.daemonIds.has(id)) return { ok: false, code: 2, why: `client id ${id} is the daemon's own` };
    if (!user) return { ok: true, daemon: false };
    if (username === undefined) return { ok: false, code: 5, why: 'anonymous clients are refused (mqtt.embedded.username is set)' };
    // Both compared, always: the time taken says nothing about which one was wrong.
    const userOk = same(username, user.username);
    const passwordOk = same(password, user.password);
    return userOk && passwordOk ? { ok: true, daemon: false } : { ok: false, code: 4, why: 'bad username or password' };
  }

  isDaemon(client: object | null): boolean {
    return client !== null && this.daemons.has(client);
  }
}
