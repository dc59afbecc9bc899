import { MESSAGE_KINDS, type OutboxMessage } from './types.js';

/**
 * The disk outbox's log format: one record per line, `<crc32 as 8 hex digits> <json>\n`.
 *
 * JSON.stringify never emits a raw newline (it escapes them inside strings) and UTF-8 never
 * uses byte 0x0A inside a multi-byte character, so a newline always ends a record: a torn or
 * corrupted record can be skipped without losing the ones after it, which a length-prefixed
 * binary format cannot do once a length field is damaged. The CRC catches what a parse check
 * alone would accept: a record cut at a place that still parses (`..."payload":"ab` cannot,
 * but `{"t":"del","ids":[12` + garbage that completes it could), bit rot, or the zeroed blocks
 * a power loss can leave after the last fsync.
 *
 * Records: `meta` (first line of every rewritten log: the next id, so ids stay monotonic when
 * every message has been acked), `add` (a message), `del` (ids acked, dropped or superseded).
 */
export type LogRecord =
  | { t: 'meta'; v: 1; next: number }
  | ({ t: 'add' } & OutboxMessage)
  | { t: 'del'; ids: number[] };

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE); zlib.crc32 only exists from Node 20.15 and package.json allows 20.9. */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = (CRC_TABLE[(c ^ (buf[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeRecord(record: LogRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record));
  const line = Buffer.allocUnsafe(9 + json.length + 1);
  line.write(crc32(json).toString(16).padStart(8, '0'), 0, 'latin1');
  line[8] = 0x20;
  json.copy(line, 9);
  line[line.length - 1] = 0x0a;
  return line;
}

export function addRecord(msg: OutboxMessage): Buffer {
  const { id, topic, payload, qos, retain, kind } = msg;
  return encodeRecord({ t: 'add', id, kind, qos, retain, topic, payload });
}

/** Bytes of a message's `add` record: what the disk bound counts. */
export function recordSize(msg: OutboxMessage): number {
  return addRecord(msg).length;
}

/** One line without its newline; undefined when the CRC, the JSON or the shape is wrong. */
export function decodeLine(line: Buffer): LogRecord | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const crcText = line.toString('latin1', 0, 8);
  if (!/^[0-9a-f]{8}$/.test(crcText)) return undefined;
  const json = line.subarray(9);
  if (parseInt(crcText, 16) !== crc32(json)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
  return isRecord(value) ? value : undefined;
}

function isId(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
}

function isRecord(v: unknown): v is LogRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  switch (r.t) {
    case 'meta':
      return r.v === 1 && isId(r.next);
    case 'del':
      return Array.isArray(r.ids) && r.ids.every(isId);
    case 'add':
      return (
        isId(r.id) &&
        typeof r.topic === 'string' &&
        typeof r.payload === 'string' &&
        (r.qos === 1 || r.qos === 2) &&
        typeof r.retain === 'boolean' &&
        MESSAGE_KINDS.includes(r.kind as OutboxMessage['kind'])
      );
    default:
      return false;
  }
}

export interface ParsedLog {
  records: LogRecord[];
  /** Bad records followed by at least one good one: real damage, reported as an error. */
  corrupt: { offset: number; length: number }[];
  /** Bytes after the last good record: a crash mid-append (or unsynced blocks after a power loss). */
  tornBytes: number;
}

export function parseLog(buf: Buffer): ParsedLog {
  const records: LogRecord[] = [];
  const bad: { offset: number; length: number }[] = [];
  let goodEnd = 0;
  let start = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break; // no newline: the last append never finished
    const record = decodeLine(buf.subarray(start, nl));
    if (record) {
      records.push(record);
      goodEnd = nl + 1;
    } else {
      bad.push({ offset: start, length: nl + 1 - start });
    }
    start = nl + 1;
  }
  return { records, corrupt: bad.filter((b) => b.offset < goodEnd), tornBytes: buf.length - goodEnd };
}
