import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { decodeSignature, generateKeyPair, keyFingerprint, publicKeyFromPrivate, signManifest, verifyManifest } from '../../src/updates/signing.js';

const manifest = Buffer.from('{\n  "schema": 1,\n  "version": "1.2.3"\n}\n');

describe('manifest signatures (Ed25519)', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();

  it('generates PEM key pairs (SPKI public, PKCS#8 private)', () => {
    expect(a.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(a.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicKeyFromPrivate(a.privateKey)).toBe(a.publicKey);
    expect(keyFingerprint(a.publicKey)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyFingerprint(a.publicKey)).not.toBe(keyFingerprint(b.publicKey));
  });

  it('signs into one line of base64 and verifies it, as text or raw bytes', () => {
    const sig = signManifest(manifest, a.privateKey);
    expect(sig).toMatch(/^[A-Za-z0-9+/]{86}==\n$/);
    expect(verifyManifest(manifest, sig, [a.publicKey])).toEqual({ index: 0, fingerprint: keyFingerprint(a.publicKey) });
    expect(verifyManifest(manifest, Buffer.from(sig), [a.publicKey]).index).toBe(0);
    const raw = decodeSignature(sig);
    expect(raw).toHaveLength(64);
    expect(verifyManifest(manifest, raw, [a.publicKey]).index).toBe(0);
  });

  it('refuses a signature by another key', () => {
    const sig = signManifest(manifest, b.privateKey);
    expect(() => verifyManifest(manifest, sig, [a.publicKey])).toThrow(/signature does not match any trusted key/);
  });

  it('refuses the manifest after any single byte changed, and a damaged signature', () => {
    const sig = signManifest(manifest, a.privateKey);
    for (let i = 0; i < manifest.length; i++) {
      const tampered = Buffer.from(manifest);
      tampered[i] = tampered[i]! ^ 0x01;
      expect(() => verifyManifest(tampered, sig, [a.publicKey])).toThrow(/does not match any trusted key/);
    }
    // Signed bytes are exact: even a re-serialization with the same meaning fails.
    const reserialized = Buffer.from(JSON.stringify(JSON.parse(manifest.toString())));
    expect(() => verifyManifest(reserialized, sig, [a.publicKey])).toThrow(/does not match/);
    const raw = decodeSignature(sig);
    raw[10] = raw[10]! ^ 0x80;
    expect(() => verifyManifest(manifest, raw, [a.publicKey])).toThrow(/does not match/);
    expect(() => verifyManifest(manifest, 'bm90IGEgc2lnbmF0dXJl', [a.publicKey])).toThrow(/not 64 bytes of base64/);
    expect(() => verifyManifest(manifest, Buffer.alloc(63), [a.publicKey])).toThrow(/63 bytes/);
  });

  it('supports key rotation: any of several trusted keys, reporting which one', () => {
    const oldSig = signManifest(manifest, a.privateKey);
    const newSig = signManifest(manifest, b.privateKey);
    const trusted = [a.publicKey, b.publicKey];
    expect(verifyManifest(manifest, oldSig, trusted).index).toBe(0);
    expect(verifyManifest(manifest, newSig, trusted)).toEqual({ index: 1, fingerprint: keyFingerprint(b.publicKey) });
    // After the old key is retired, its releases stop verifying.
    expect(() => verifyManifest(manifest, oldSig, [b.publicKey])).toThrow(/does not match any trusted key/);
  });

  it('refuses bad trusted keys and signing keys clearly', () => {
    const sig = signManifest(manifest, a.privateKey);
    expect(() => verifyManifest(manifest, sig, [])).toThrow(/no trusted public keys/);
    expect(() => verifyManifest(manifest, sig, ['garbage'])).toThrow(/trusted key #1 is not a PEM public key/);
    expect(() => verifyManifest(manifest, sig, [a.privateKey])).toThrow(/trusted key #1 is a private key/);
    const rsa = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    expect(() => verifyManifest(manifest, sig, [a.publicKey, rsa.publicKey])).toThrow(/trusted key #2 is a rsa key, not Ed25519/);
    expect(() => signManifest(manifest, rsa.privateKey)).toThrow(/signing key is a rsa key, not Ed25519/);
    expect(() => signManifest(manifest, a.publicKey)).toThrow(/not a PEM private key/);
  });
});
