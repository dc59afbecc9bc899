import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../config/load.js';
import type { HttpAuthConfig } from '../../config/http-schema.js';
import { parseScrypt, type BasicUser, type Credentials } from './http-auth.js';

// The files http.auth names, read once at start (a change needs a restart, like the rest of
// http.*). Every problem is a configuration error naming its key, so the daemon exits 78
// rather than serve without the protection that was asked for.

/** A guessable token is no protection; 16 characters of `openssl rand -hex 32` output are plenty. */
export const MIN_TOKEN_LENGTH = 16;

/** The token in a token_file's text (surrounding whitespace, such as `echo`'s newline, is not part of it). */
export function parseToken(text: string): string {
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`the token is ${token.length} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`);
  if (/[\s,"]/.test(token)) throw new Error('the token must be one word (no spaces, commas or quotes)');
  return token;
}

/** A basic_file's text: `user:$scrypt$...` lines; blank lines and `#` comments are skipped. Errors name the line. */
export function parseBasicFile(text: string): Map<string, BasicUser> {
  const users = new Map<string, BasicUser>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const at = `line ${i + 1}`;
    if (colon <= 0) throw new Error(`${at}: expected user:$scrypt$...`);
    if (users.has(user)) throw new Error(`${at}: user "${user}" is listed twice`);
    try {
      users.set(user, parseScrypt(line.slice(colon + 1)));
    } catch (err) {
      throw new Error(`${at} (${user}): ${(err as Error).message}`);
    }
  });
  if (users.size === 0) throw new Error('no users in it (expected user:$scrypt$... lines)');
  return users;
}

async function readKey<T>(key: string, path: string, parse: (text: string) => T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', [`http.auth.${key}: cannot read ${path}: ${(err as Error).message}`]);
  }
  try {
    return parse(text);
  } catch (err) {
    throw new ConfigError('config', [`http.auth.${key}: ${path}: ${(err as Error).message}`]);
  }
}

/** The credentials http.auth configures; undefined without http.auth. */
export async function loadCredentials(auth: HttpAuthConfig | undefined): Promise<Credentials | undefined> {
  if (!auth) return undefined;
  return {
    ...(auth.token_file !== undefined ? { token: await readKey('token_file', auth.token_file, parseToken) } : {}),
    ...(auth.basic_file !== undefined ? { users: await readKey('basic_file', auth.basic_file, parseBasicFile) } : {}),
  };
}
