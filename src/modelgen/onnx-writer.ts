/**
 * A minimal ONNX ModelProto encoder: just enough of onnx.proto, hand-encoded in protobuf wire
 * format, to generate the demo and test models at runtime (the demo must run with no download
 * and we don't want a protobuf dependency for a few hundred bytes of graph).
 *
 * onnx.proto is proto2, whose repeated scalars are unpacked by default, but protobuf parsers
 * must accept packed encodings for them too, and packed is smaller, so we always pack.
 */

export type ElemType = 'float32' | 'float16' | 'uint8' | 'int8' | 'int32' | 'int64';

export type TensorData = Float32Array | Uint16Array | Uint8Array | Int8Array | Int32Array | BigInt64Array;

/** An initializer (or tensor attribute). float16 data is Uint16Array bit patterns. */
export interface TensorDef {
  name: string;
  type: ElemType;
  dims: number[];
  data: TensorData;
}

export type AttrValue =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] }
  | { t: TensorDef };

export interface NodeDef {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

/** A graph input/output; a string dim is symbolic (dim_param), e.g. 'batch_size'. */
export interface ValueInfoDef {
  name: string;
  type: ElemType;
  shape: (number | string)[];
}

export interface ModelDef {
  name: string;
  inputs: ValueInfoDef[];
  outputs: ValueInfoDef[];
  nodes: NodeDef[];
  initializers: TensorDef[];
  /** Default-domain opset; default 13. */
  opset?: number;
  /** Default 8 (ONNX 1.10+), loadable by any onnxruntime >= 1.10. */
  irVersion?: number;
  producer?: string;
}

// TensorProto.DataType values, with the typed array each one is carried in.
const ELEM: Record<ElemType, { code: number; array: new (n: number) => TensorData; bytes: number }> = {
  float32: { code: 1, array: Float32Array, bytes: 4 },
  uint8: { code: 2, array: Uint8Array, bytes: 1 },
  int8: { code: 3, array: Int8Array, bytes: 1 },
  int32: { code: 6, array: Int32Array, bytes: 4 },
  int64: { code: 7, array: BigInt64Array, bytes: 8 },
  float16: { code: 10, array: Uint16Array, bytes: 2 },
};

export function elemTypeCode(type: ElemType): number {
  return ELEM[type].code;
}

// AttributeProto.AttributeType values.
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

/** Growable byte buffer with the protobuf primitives we need. */
class Writer {
  private buf = new Uint8Array(64);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  /** int64/int32/enum varint; negatives take 10 bytes (two's complement), as protobuf requires. */
  varint(v: number | bigint): void {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`not an integer: ${v}`);
      if (v >= 0 && v <= 0x7fffffff) {
        while (v > 0x7f) {
          this.byte((v & 0x7f) | 0x80);
          v >>>= 7;
        }
        this.byte(v);
        return;
      }
      v = BigInt(v);
    }
    let u = BigInt.asUintN(64, v);
    while (u > 0x7fn) {
      this.byte(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.byte(Number(u));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, utf8.encode(s));
  }

  message(field: number, body: (w: Writer) => void): void {
    const sub = new Writer();
    body(sub);
    this.bytes(field, sub.finish());
  }

  packedInts(field: number, vs: readonly number[]): void {
    if (vs.length === 0) return;
    const sub = new Writer();
    for (const v of vs) sub.varint(v);
    this.bytes(field, sub.finish());
  }

  packedFloats(field: number, vs: readonly number[]): void {
    if (vs.length === 0) return;
    const data = new Uint8Array(vs.length * 4);
    const view = new DataView(data.buffer);
    vs.forEach((v, i) => view.setFloat32(i * 4, v, true));
    this.bytes(field, data);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** raw_data is little-endian whatever the host; copy (and byte-swap on a big-endian host). */
function rawBytes(t: TensorDef): Uint8Array {
  const { array, bytes } = ELEM[t.type];
  if (!(t.data instanceof array)) {
    throw new TypeError(`tensor ${t.name}: ${t.type} data must be a ${array.name}, got ${t.data.constructor.name}`);
  }
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) {
    throw new RangeError(`tensor ${t.name}: dims [${t.dims.join(',')}] need ${count} values, got ${t.data.length}`);
  }
  const out = new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  if (!HOST_LE && bytes > 1) {
    for (let i = 0; i < out.length; i += bytes) out.subarray(i, i + bytes).reverse();
  }
  return out;
}

function writeTensor(w: Writer, t: TensorDef): void {
  w.packedInts(1, t.dims);
  w.int(2, ELEM[t.type].code);
  w.string(8, t.name);
  w.bytes(9, rawBytes(t));
}

function writeAttr(w: Writer, name: string, v: AttrValue): void {
  w.string(1, name);
  if ('f' in v) {
    w.float(2, v.f);
    w.int(20, ATTR_FLOAT);
  } else if ('i' in v) {
    w.int(3, v.i);
    w.int(20, ATTR_INT);
  } else if ('s' in v) {
    w.string(4, v.s);
    w.int(20, ATTR_STRING);
  } else if ('t' in v) {
    w.message(5, (m) => writeTensor(m, v.t));
    w.int(20, ATTR_TENSOR);
  } else if ('floats' in v) {
    w.packedFloats(7, v.floats);
    w.int(20, ATTR_FLOATS);
  } else {
    w.packedInts(8, v.ints);
    w.int(20, ATTR_INTS);
  }
}

function writeNode(w: Writer, n: NodeDef): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.op);
  for (const [name, v] of Object.entries(n.attrs ?? {})) w.message(5, (m) => writeAttr(m, name, v));
  if (n.domain !== undefined) w.string(7, n.domain);
}

function writeValueInfo(w: Writer, v: ValueInfoDef): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, ELEM[v.type].code);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'string' ? dim.string(2, d) : dim.int(1, d)));
        }
      });
    }),
  );
}

/** Serialize a model to the bytes of an .onnx file (InferenceSession.create accepts them). */
export function encodeModel(def: ModelDef): Uint8Array {
  const w = new Writer();
  w.int(1, def.irVersion ?? 8);
  w.string(2, def.producer ?? 'edge-classifier modelgen');
  w.string(3, '1');
  w.message(7, (g) => {
    for (const n of def.nodes) g.message(1, (m) => writeNode(m, n));
    g.string(2, def.name);
    for (const t of def.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const i of def.inputs) g.message(11, (m) => writeValueInfo(m, i));
    for (const o of def.outputs) g.message(12, (m) => writeValueInfo(m, o));
  });
  w.message(8, (op) => {
    op.string(1, '');
    op.int(2, def.opset ?? 13);
  });
  return w.finish();
}

/** A float32 initializer from plain numbers. */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorDef {
  return { name, type: 'float32', dims, data: Float32Array.from(values) };
}

/** An int64 initializer (shapes, axes) from plain numbers. */
export function int64Tensor(name: string, dims: number[], values: readonly number[]): TensorDef {
  return { name, type: 'int64', dims, data: BigInt64Array.from(values, (v) => BigInt(v)) };
}
