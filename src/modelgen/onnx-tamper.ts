/**
 * Reads and edits the initializers (weights) of an ONNX file in place, for validation controls:
 * a release whose weights were negated or zeroed in one layer must fail the device's validation
 * gate. Like onnx-inspect.ts it walks the protobuf wire format by hand; an edit rewrites the
 * bytes of one `raw_data` field without changing its length, so nothing is re-serialized.
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

// Field numbers in onnx.proto.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;

/** onnx.TensorProto.DataType values this module can edit. */
export const ONNX_DTYPE = { float: 1, uint8: 2, int8: 3, float16: 10 } as const;

export interface InitializerInfo {
  name: string;
  dataType: number;
  dims: number[];
  /** Byte range of raw_data inside the file; undefined when the values are in typed fields. */
  raw?: { offset: number; length: number };
}

interface Field {
  field: number;
  wire: number;
  /** LEN fields: where the body starts and its length. VARINT: the value. */
  start: number;
  length: number;
  value: number;
}

function* fields(buf: Uint8Array, from: number, to: number): Generator<Field> {
  let pos = from;
  const varint = (): number => {
    let result = 0;
    let mult = 1;
    for (;;) {
      if (pos >= to) throw new RangeError('truncated protobuf varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mult;
      if (b < 0x80) return result;
      mult *= 128;
    }
  };
  while (pos < to) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === WIRE_VARINT) {
      yield { field, wire, start: pos, length: 0, value: varint() };
    } else if (wire === WIRE_LEN) {
      const length = varint();
      if (pos + length > to) throw new RangeError('truncated protobuf field');
      yield { field, wire, start: pos, length, value: 0 };
      pos += length;
    } else if (wire === WIRE_I64) {
      pos += 8;
    } else if (wire === WIRE_I32) {
      pos += 4;
    } else {
      throw new RangeError(`unsupported protobuf wire type ${wire}`);
    }
  }
}

function packedVarints(buf: Uint8Array, start: number, length: number): number[] {
  const out: number[] = [];
  let pos = start;
  while (pos < start + length) {
    let result = 0;
    let mult = 1;
    for (;;) {
      const b = buf[pos++]!;
      result += (b & 0x7f) * mult;
      if (b < 0x80) break;
      mult *= 128;
    }
    out.push(result);
  }
  return out;
}

/** The main graph's initializers, in file order. */
export function listInitializers(buf: Uint8Array): InitializerInfo[] {
  const out: InitializerInfo[] = [];
  for (const g of fields(buf, 0, buf.length)) {
    if (g.field !== MODEL_GRAPH || g.wire !== WIRE_LEN) continue;
    for (const t of fields(buf, g.start, g.start + g.length)) {
      if (t.field !== GRAPH_INITIALIZER || t.wire !== WIRE_LEN) continue;
      const info: InitializerInfo = { name: '', dataType: 0, dims: [] };
      for (const f of fields(buf, t.start, t.start + t.length)) {
        if (f.field === TENSOR_DIMS) info.dims.push(...(f.wire === WIRE_LEN ? packedVarints(buf, f.start, f.length) : [f.value]));
        else if (f.field === TENSOR_DATA_TYPE && f.wire === WIRE_VARINT) info.dataType = f.value;
        else if (f.field === TENSOR_NAME && f.wire === WIRE_LEN) info.name = new TextDecoder().decode(buf.subarray(f.start, f.start + f.length));
        else if (f.field === TENSOR_RAW_DATA && f.wire === WIRE_LEN) info.raw = { offset: f.start, length: f.length };
      }
      out.push(info);
    }
  }
  return out;
}

export type Tamper = 'negate' | 'zero';

/**
 * A copy of the model with one initializer's values negated or zeroed. int8 negation saturates
 * (-128 -> 127); uint8 weights are stored around a zero point, so they are mirrored around their
 * mean byte (negation) or set to it (zero), which is what either edit means for the real value.
 */
export function tamperInitializer(model: Uint8Array, name: string, how: Tamper): Uint8Array {
  const info = listInitializers(model).find((i) => i.name === name);
  if (!info) throw new Error(`no initializer named ${name}`);
  if (!info.raw) throw new Error(`initializer ${name} keeps its values in typed fields, not raw_data`);
  const out = Uint8Array.from(model);
  const bytes = out.subarray(info.raw.offset, info.raw.offset + info.raw.length);
  switch (info.dataType) {
    case ONNX_DTYPE.float:
    case ONNX_DTYPE.float16: {
      // Little-endian: the sign bit is the top bit of each value's last byte.
      const width = info.dataType === ONNX_DTYPE.float ? 4 : 2;
      if (how === 'zero') bytes.fill(0);
      else for (let i = width - 1; i < bytes.length; i += width) bytes[i] = bytes[i]! ^ 0x80;
      break;
    }
    case ONNX_DTYPE.int8: {
      const v = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      for (let i = 0; i < v.length; i++) v[i] = how === 'zero' ? 0 : Math.min(127, -v[i]!);
      break;
    }
    case ONNX_DTYPE.uint8: {
      let sum = 0;
      for (const b of bytes) sum += b;
      const mid = Math.round(sum / Math.max(1, bytes.length));
      for (let i = 0; i < bytes.length; i++) bytes[i] = how === 'zero' ? mid : Math.max(0, Math.min(255, 2 * mid - bytes[i]!));
      break;
    }
    default:
      throw new Error(`initializer ${name} has ONNX data type ${info.dataType}, which this tool does not edit`);
  }
  return out;
}
