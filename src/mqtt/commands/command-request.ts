import { z } from 'zod';
import type { IPublishPacket } from 'mqtt';
import type { Credentials } from './command-auth.js';

/** MQTT v5 properties of a request that shape its answer and may carry its credentials. */
export type RequestProperties = IPublishPacket['properties'];

const Transaction = z.union([z.string().max(256), z.number()]);
const Field = z.string().min(1).max(1024);

export type ParsedRequest =
  | { ok: true; transaction: string | number | null; credentials: Credentials; params: Record<string, unknown> }
  | { ok: false; error: string; transaction?: undefined };

/**
 * A request's JSON body, split into its transaction, its credentials and the command's
 * parameters. Credentials come from the JSON fields `secret`/`client` (MQTT 3.1.1, and what
 * Home Assistant's mqtt.publish can send), or from MQTT v5 user properties of the same names.
 */
export function parseRequest(payload: Buffer, properties: RequestProperties, maxBytes: number): ParsedRequest {
  if (payload.length > maxBytes) return { ok: false, error: `payload of ${payload.length} bytes is over the limit of ${maxBytes}` };
  let body: unknown;
  try {
    body = payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, error: `malformed JSON: ${(err as Error).message}` };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { ok: false, error: 'the request must be a JSON object' };
  const { transaction: tx, secret, client, ...params } = body as Record<string, unknown>;
  let transaction: string | number | null = null;
  if (tx !== undefined) {
    const parsed = Transaction.safeParse(tx);
    if (!parsed.success) return { ok: false, error: 'transaction: expected a string (at most 256 characters) or a number' };
    transaction = parsed.data;
  }
  const user = properties?.userProperties ?? {};
  const creds: Credentials = {};
  for (const [key, fromJson] of [['secret', secret], ['client', client]] as const) {
    const raw = fromJson ?? first(user[key]);
    if (raw === undefined) continue;
    const parsed = Field.safeParse(raw);
    if (!parsed.success) return { ok: false, error: `${key}: expected a string of 1 to 1024 characters` };
    creds[key] = parsed.data;
  }
  return { ok: true, transaction, credentials: creds, params };
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Where an authorised MQTT v5 request asked for its answer (the request/response pattern),
 * with its correlation data. Refused for wildcards, `$` topics and anything under the base
 * topic, so a request cannot make the daemon write into its own or another device's tree.
 */
export function replyTopic(properties: RequestProperties, base: string): { topic: string; properties?: { correlationData: Buffer } } | undefined {
  const topic = properties?.responseTopic;
  if (!topic || topic.length > 512 || /[#+]/.test(topic) || topic.startsWith('$')) return undefined;
  if (topic === base || topic.startsWith(`${base}/`)) return undefined;
  return { topic, ...(properties.correlationData ? { properties: { correlationData: properties.correlationData } } : {}) };
}
