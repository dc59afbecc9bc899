import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// Optional credentials for the HTTP server: a bearer token (for Prometheus, curl, scripts) and
// HTTP basic auth (what a browser can do by itself, so the preview page works with it: the
// browser resends same-origin basic credentials with the page's EventSource and snapshot
// requests; a bearer token cannot be typed into a browser).
//
// Passwords are stored as scrypt hashes, not in plain text: people reuse passwords, and the
// file ends up in backups and config management. scrypt is in node:crypto (bcrypt, Apache's
// usual htpasswd scheme, would need a native module) and is memory-hard.

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** 16 MiB and ~40 ms on a desktop core per verification; verified credentials are cached, so a page's requests do not each pay it. */
export const SCRYPT_DEFAULT: ScryptParams = { N: 16_384, r: 8, p: 1 };
const KEY_LENGTH = 32;
const MAX_SCRYPT_MEMORY = 256 * 2 ** 20;

export interface BasicUser {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

export interface Credentials {
  /** The bearer token, if token_file is set. */
  token?: string;
  /** Users by name, if basic_file is set. */
  users?: ReadonlyMap<string, BasicUser>;
}

const LINE = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function scryptOptions(params: ScryptParams): ScryptOptions {
  // Node's default maxmem (32 MiB) refuses N=32768,r=8; allow what parseScrypt let through.
  return { ...params, maxmem: 128 * params.N * params.r + 2 ** 20 };
}

/** `$scrypt$N=16384,r=8,p=1$SALT$HASH` (base64) for a password: the part after `user:` in basic_file. */
export async function hashPassword(password: string, params: ScryptParams = SCRYPT_DEFAULT, salt: Buffer = randomBytes(16)): Promise<string> {
  const hash = await derive(password, salt, params, KEY_LENGTH);
  return `$scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** One stored hash; the error says what is wrong with it. */
export function parseScrypt(text: string): BasicUser {
  const m = LINE.exec(text);
  if (!m) throw new Error('expected user:$scrypt$N=16384,r=8,p=1$SALT$HASH (plain-text passwords are not accepted)');
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  // Bounds keep a typo from asking for gigabytes per request.
  if (params.N < 1024 || params.N > 2 ** 20 || (params.N & (params.N - 1)) !== 0) throw new Error(`N=${params.N}: expected a power of two from 1024 to 1048576`);
  if (params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) throw new Error(`r=${params.r},p=${params.p}: expected r 1-32, p 1-16`);
  if (128 * params.N * params.r > MAX_SCRYPT_MEMORY) throw new Error(`N=${params.N},r=${params.r} needs ${(128 * params.N * params.r) / 2 ** 20} MiB per check; at most 256`);
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16) throw new Error('salt or hash too short (at least 8 and 16 bytes)');
  return { params, salt, hash };
}

function derive(password: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, length, scryptOptions(params), (err, key) => (err ? reject(err) : resolve(key))));
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Constant time whatever the lengths: both sides are hashed to 32 bytes first. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export type Verdict = 'ok' | 'denied' | 'busy';

/** Distinct credentials remembered as verified, and for how long (a password removed from the file needs a restart anyway). */
const CACHE_SIZE = 32;
const CACHE_MS = 10 * 60_000;
/** scrypt runs on libuv's threads, which sharp needs too: a flood of wrong passwords may hold one of them, not all. */
const MAX_WAITING = 16;

/** Checks Authorization headers against the configured credentials. */
export class HttpAuth {
  private readonly verified = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly creds: Credentials,
    private readonly now: () => number = Date.now,
  ) {}

  /** WWW-Authenticate challenges for a 401: Basic makes a browser ask for a password. */
  challenges(): string[] {
    const out: string[] = [];
    if (this.creds.users) out.push('Basic realm="edge-classifier", charset="UTF-8"');
    if (this.creds.token !== undefined) out.push('Bearer realm="edge-classifier"');
    return out;
  }

  async check(authorization: string | undefined): Promise<Verdict> {
    if (!authorization) return 'denied';
    const space = authorization.indexOf(' ');
    const scheme = authorization.slice(0, space).toLowerCase();
    const value = authorization.slice(space + 1).trim();
    if (space < 0 || !value) return 'denied';
    if (scheme === 'bearer' && this.creds.token !== undefined) return sameSecret(value, this.creds.token) ? 'ok' : 'denied';
    if (scheme === 'basic' && this.creds.users) return this.basic(value);
    return 'denied';
  }

  private async basic(value: string): Promise<Verdict> {
    // Keyed by a hash, so the cache holds no password.
    const key = sha256(value).toString('base64');
    const until = this.verified.get(key);
    if (until !== undefined && until > this.now()) return 'ok';
    this.verified.delete(key);
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return 'denied';
    if (this.waiting >= MAX_WAITING) return 'busy';
    this.waiting++;
    // One scrypt at a time.
    const run = this.chain.then(() => this.verify(decoded.slice(0, colon), decoded.slice(colon + 1)));
    this.chain = run.catch(() => undefined);
    try {
      const ok = await run;
      if (ok) this.remember(key);
      return ok ? 'ok' : 'denied';
    } finally {
      this.waiting--;
    }
  }

  private async verify(user: string, password: string): Promise<boolean> {
    const entry = this.creds.users?.get(user);
    // An unknown user costs the same as a wrong password: no probing for names by timing.
    const { params, salt, hash } = entry ?? { params: SCRYPT_DEFAULT, salt: Buffer.alloc(16), hash: Buffer.alloc(KEY_LENGTH) };
    const derived = await derive(password, salt, params, hash.length);
    return timingSafeEqual(derived, hash) && entry !== undefined;
  }

  private remember(key: string): void {
    if (this.verified.size >= CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(key, this.now() + CACHE_MS);
  }
}
