import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Ed25519 signatures over the exact bytes of manifest.json.
 *
 * The bytes as served are what is signed and verified, never a re-serialization: JSON has no
 * canonical form, and a device must not parse (let alone trust) a field before the signature
 * over those bytes checked out.
 *
 * `manifest.json.sig` holds the 64-byte signature in base64 on one line (88 characters plus a
 * newline). Text survives anything that serves or copies the release (CDN content-type
 * sniffing, text-mode transfers, `cat` when debugging); verification also accepts the raw 64
 * bytes, so a hand-made release with a binary signature works too.
 */

export interface KeyPairPem {
  /** SPKI PEM: goes to devices (`updates.public_keys`). */
  publicKey: string;
  /** PKCS#8 PEM: stays with the publisher. */
  privateKey: string;
}

export class SignatureError extends Error {
  override name = 'SignatureError';
}

export function generateKeyPair(): KeyPairPem {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKey, privateKey };
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SignatureError(`${what} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  }
  return key;
}

function publicKeyOf(pem: string, what: string): KeyObject {
  // createPublicKey would accept a private key too; refusing one keeps signing keys off devices.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new SignatureError(`${what} is a private key: give the public key (release-key.pub.pem) instead`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new SignatureError(`${what} is not a PEM public key: ${(err as Error).message}`);
  }
  return requireEd25519(key, what);
}

/** A short stable name for a public key: the first 16 hex digits of sha256(SPKI DER). */
export function keyFingerprint(publicPem: string): string {
  const der = publicKeyOf(publicPem, 'public key').export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

/** The public key (SPKI PEM) of a private key PEM. */
export function publicKeyFromPrivate(privatePem: string): string {
  return createPublicKey(privateKeyOf(privatePem)).export({ type: 'spki', format: 'pem' }).toString();
}

function privateKeyOf(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new SignatureError(`the signing key is not a PEM private key: ${(err as Error).message}`);
  }
  return requireEd25519(key, 'the signing key');
}

/** The signature of `manifestBytes`, base64 on one line with a trailing newline (the .sig file). */
export function signManifest(manifestBytes: Uint8Array, privatePem: string): string {
  return `${sign(null, manifestBytes, privateKeyOf(privatePem)).toString('base64')}\n`;
}

const BASE64_SIG = /^[A-Za-z0-9+/]{86}==$/;

/** The 64 signature bytes from a .sig file's content (base64 text or raw bytes). */
export function decodeSignature(sig: Uint8Array | string): Buffer {
  if (typeof sig === 'string') {
    const text = sig.trim();
    if (!BASE64_SIG.test(text)) throw new SignatureError('signature is not 64 bytes of base64');
    return Buffer.from(text, 'base64');
  }
  const bytes = Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength);
  const text = bytes.toString('latin1').trim();
  if (BASE64_SIG.test(text)) return Buffer.from(text, 'base64');
  if (bytes.length === 64) return bytes;
  throw new SignatureError(`signature file holds ${bytes.length} bytes: expected 88 base64 characters or 64 raw bytes`);
}

export interface VerifiedBy {
  /** Index into the trusted keys. */
  index: number;
  fingerprint: string;
}

/**
 * Which of the trusted keys signed `manifestBytes`; throws SignatureError when none did.
 * Several keys allow rotation: devices trust old and new while releases switch to the new one.
 */
export function verifyManifest(manifestBytes: Uint8Array, signature: Uint8Array | string, trustedPublicPems: readonly string[]): VerifiedBy {
  if (trustedPublicPems.length === 0) throw new SignatureError('no trusted public keys configured');
  const sig = decodeSignature(signature);
  // Parse every key first: a malformed trusted key is a configuration error even when another
  // key happens to verify.
  const keys = trustedPublicPems.map((pem, i) => publicKeyOf(pem, `trusted key #${i + 1}`));
  for (const [index, key] of keys.entries()) {
    if (verify(null, manifestBytes, key, sig)) {
      return { index, fingerprint: keyFingerprint(trustedPublicPems[index]!) };
    }
  }
  throw new SignatureError(`signature does not match any trusted key (${keys.length} tried)`);
}
