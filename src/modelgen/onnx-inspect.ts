/**
 * A minimal ONNX ModelProto reader: just the graph's node op types (and domains), to check what
 * onnxruntime made of a model (e.g. counting QLinearConv in the file `optimizedModelFilePath`
 * writes). It walks the protobuf wire format and skips every other field, so it stays small.
 *
 * Only the main graph's nodes are listed; subgraphs (If/Loop bodies) are not descended into.
 */

export interface NodeSummary {
  opType: string;
  domain: string;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

// Field numbers in onnx.proto.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;

const utf8 = new TextDecoder();

/** Calls `onField` for each top-level field of one message; LEN fields get their bytes. */
function forEachField(buf: Uint8Array, onField: (field: number, body: Uint8Array | undefined) => void): void {
  let pos = 0;
  // Numbers, not BigInt: lengths and tags are far below 2^53; other varints are only skipped.
  const varint = (): number => {
    let result = 0;
    let mult = 1;
    for (;;) {
      if (pos >= buf.length) throw new RangeError('truncated protobuf varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mult;
      if (b < 0x80) return result;
      mult *= 128;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === WIRE_VARINT) {
      varint();
      onField(field, undefined);
    } else if (wire === WIRE_LEN) {
      const len = varint();
      if (pos + len > buf.length) throw new RangeError(`truncated protobuf field ${field}`);
      onField(field, buf.subarray(pos, pos + len));
      pos += len;
    } else if (wire === WIRE_I64 || wire === WIRE_I32) {
      pos += wire === WIRE_I64 ? 8 : 4;
      onField(field, undefined);
    } else {
      throw new RangeError(`unsupported protobuf wire type ${wire}`);
    }
  }
}

/** The op type and domain of every node of the model's main graph, in file order. */
export function listNodes(model: Uint8Array): NodeSummary[] {
  const nodes: NodeSummary[] = [];
  forEachField(model, (field, graph) => {
    if (field !== MODEL_GRAPH || !graph) return;
    forEachField(graph, (gField, node) => {
      if (gField !== GRAPH_NODE || !node) return;
      const summary: NodeSummary = { opType: '', domain: '' };
      forEachField(node, (nField, value) => {
        if (nField === NODE_OP_TYPE && value) summary.opType = utf8.decode(value);
        if (nField === NODE_DOMAIN && value) summary.domain = utf8.decode(value);
      });
      nodes.push(summary);
    });
  });
  return nodes;
}

/** How many nodes of each op type the model's main graph has. */
export function countOpTypes(model: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { opType } of listNodes(model)) counts.set(opType, (counts.get(opType) ?? 0) + 1);
  return counts;
}
