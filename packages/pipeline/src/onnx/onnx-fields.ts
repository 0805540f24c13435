/**
 * Field numbers and enum values of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
 * that the in-memory model edits read and write (batch.ts, subnormal.ts, extra-outputs.ts,
 * prelu.ts, channel-padding.ts), named MESSAGE_FIELD, and the readers and writers of the messages
 * they share: the model's graph, a node, a tensor, an attribute.
 */
import {
  asBytes,
  fields,
  lengthDelimitedBytes,
  lengthDelimitedField,
  ProtobufFormatError,
  replacePayload,
  varintField,
  WIRE_FIXED32,
  WIRE_LENGTH_DELIMITED,
  WIRE_VARINT,
  type Field,
} from './protobuf.js';

export const MODEL_GRAPH = 7;

export const GRAPH_NODE = 1;
export const GRAPH_INITIALIZER = 5;
export const GRAPH_INPUT = 11;
export const GRAPH_OUTPUT = 12;
export const GRAPH_VALUE_INFO = 13;

export const NODE_INPUT = 1;
export const NODE_OUTPUT = 2;
export const NODE_OP_TYPE = 4;
export const NODE_NAME = 3;
export const NODE_ATTRIBUTE = 5;
export const NODE_DOMAIN = 7;

export const ATTRIBUTE_NAME = 1;
export const ATTRIBUTE_I = 3;
export const ATTRIBUTE_T = 5;
export const ATTRIBUTE_G = 6;
export const ATTRIBUTE_TENSORS = 10;
export const ATTRIBUTE_GRAPHS = 11;
export const ATTRIBUTE_TYPE = 20;
/** AttributeProto.AttributeType INT. */
export const ATTRIBUTE_TYPE_INT = 2;

export const VALUE_INFO_NAME = 1;
export const VALUE_INFO_TYPE = 2;

export const TYPE_TENSOR = 1;
/** TypeProto.Tensor: its element type (a TensorProto.DataType) and its shape. */
export const TENSOR_TYPE_ELEMENT_TYPE = 1;
export const TENSOR_TYPE_SHAPE = 2;
export const SHAPE_DIM = 1;
export const DIMENSION_VALUE = 1;

export const TENSOR_DIMS = 1;
export const TENSOR_DATA_TYPE = 2;
export const TENSOR_FLOAT_DATA = 4;
export const TENSOR_NAME = 8;
export const TENSOR_RAW_DATA = 9;
export const TENSOR_DATA_LOCATION = 14;

/** TensorProto.DataType values. */
export const DATA_TYPE_FLOAT = 1;
export const DATA_TYPE_INT64 = 7;
/** TensorProto.DataLocation: the values live in a file beside the model. */
export const DATA_LOCATION_EXTERNAL = 1;

/** The graph field of a serialised ModelProto; throws unless there is exactly one. */
export function modelGraph(model: Uint8Array): Field {
  const graphs = [...fields(model, 0, model.length)].filter(
    (field) => field.number === MODEL_GRAPH && field.wireType === WIRE_LENGTH_DELIMITED,
  );
  if (graphs.length !== 1) throw new ProtobufFormatError(`expected one graph in the model, found ${graphs.length}`);
  return graphs[0]!;
}

const text = new TextDecoder();

/** The UTF-8 text of a length-delimited field's payload. */
export function textOf(bytes: Uint8Array, field: Pick<Field, 'start' | 'end'>): string {
  return text.decode(bytes.subarray(field.start, field.end));
}

/** What the model edits read of a NodeProto. */
export interface NodeFields {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Field[];
  /** Whether an attribute holds a graph (the body of an If, Loop or Scan). */
  hasSubgraph: boolean;
}

export function readNode(bytes: Uint8Array, start: number, end: number): NodeFields {
  const node: NodeFields = {
    opType: '',
    domain: '',
    name: '',
    inputs: [],
    outputs: [],
    attributes: [],
    hasSubgraph: false,
  };
  for (const field of fields(bytes, start, end)) {
    if (field.wireType !== WIRE_LENGTH_DELIMITED) continue;
    // Only the fields read as text are decoded: an attribute may hold a large tensor.
    if (field.number === NODE_OP_TYPE) node.opType = textOf(bytes, field);
    else if (field.number === NODE_DOMAIN) node.domain = textOf(bytes, field);
    else if (field.number === NODE_NAME) node.name = textOf(bytes, field);
    else if (field.number === NODE_INPUT) node.inputs.push(textOf(bytes, field));
    else if (field.number === NODE_OUTPUT) node.outputs.push(textOf(bytes, field));
    else if (field.number === NODE_ATTRIBUTE) {
      node.attributes.push(field);
      node.hasSubgraph ||= [...fields(bytes, field.start, field.end)].some(
        (attribute) => attribute.number === ATTRIBUTE_G || attribute.number === ATTRIBUTE_GRAPHS,
      );
    }
  }
  return node;
}

/** What the model edits read of a TensorProto. */
export interface TensorFields {
  name: string;
  dataType: number;
  dims: number[];
  /** Its values live in a file beside the model. */
  external: boolean;
  /** raw_data, and float_data packed or not: the fields holding its values. */
  payloads: Field[];
}

export function readTensor(bytes: Uint8Array, start: number, end: number): TensorFields {
  const tensor: TensorFields = { name: '', dataType: 0, dims: [], external: false, payloads: [] };
  for (const field of fields(bytes, start, end)) {
    if (field.number === TENSOR_NAME && field.wireType === WIRE_LENGTH_DELIMITED) tensor.name = textOf(bytes, field);
    else if (field.number === TENSOR_DATA_TYPE && field.wireType === WIRE_VARINT) tensor.dataType = field.varint;
    else if (field.number === TENSOR_DIMS && field.wireType === WIRE_VARINT) tensor.dims.push(field.varint);
    else if (field.number === TENSOR_DATA_LOCATION && field.wireType === WIRE_VARINT) {
      tensor.external = field.varint === DATA_LOCATION_EXTERNAL;
    } else if (field.number === TENSOR_RAW_DATA && field.wireType === WIRE_LENGTH_DELIMITED) {
      tensor.payloads.push(field);
    } else if (
      field.number === TENSOR_FLOAT_DATA &&
      (field.wireType === WIRE_LENGTH_DELIMITED || field.wireType === WIRE_FIXED32)
    ) {
      // float_data is packed (length-delimited) in proto3, but a writer may emit it unpacked.
      tensor.payloads.push(field);
    }
  }
  return tensor;
}

/** Whether `tensor` holds float32 values in one raw payload in the model itself (what {@link floatValues} reads). */
export function holdsFloatValues(tensor: TensorFields): boolean {
  const [payload, ...more] = tensor.payloads;
  if (tensor.dataType !== DATA_TYPE_FLOAT || tensor.external || !payload || more.length > 0) return false;
  return payload.wireType === WIRE_LENGTH_DELIMITED && (payload.end - payload.start) % 4 === 0;
}

/** `tensor`'s float32 values (a copy), where {@link holdsFloatValues}. */
export function floatValues(bytes: Uint8Array, tensor: TensorFields): Float32Array | null {
  if (!holdsFloatValues(tensor)) return null;
  const [payload] = tensor.payloads as [Field];
  const copy = bytes.slice(payload.start, payload.end);
  return new Float32Array(copy.buffer, 0, copy.length / 4);
}

/** An AttributeProto's name and integer value (undefined where it holds no integer). */
export function readAttribute(bytes: Uint8Array, attribute: Field): { name: string; value: number | undefined } {
  let name = '';
  let value: number | undefined;
  for (const field of fields(bytes, attribute.start, attribute.end)) {
    if (field.number === ATTRIBUTE_NAME) name = textOf(bytes, field);
    else if (field.number === ATTRIBUTE_I) value = field.varint;
  }
  return { name, value };
}

const utf8 = new TextEncoder();

/** A node's integer attribute field. */
export function intAttribute(name: string, value: number): number[] {
  return lengthDelimitedField(NODE_ATTRIBUTE, [
    ...lengthDelimitedField(ATTRIBUTE_NAME, utf8.encode(name)),
    ...varintField(ATTRIBUTE_I, value),
    ...varintField(ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT),
  ]);
}

/** A graph's float32 initializer field, its values as raw data. */
export function encodeFloatInitializer(name: string, dims: readonly number[], values: Float32Array): Uint8Array {
  return lengthDelimitedBytes(GRAPH_INITIALIZER, [
    [
      ...dims.flatMap((dim) => varintField(TENSOR_DIMS, dim)),
      ...varintField(TENSOR_DATA_TYPE, DATA_TYPE_FLOAT),
      ...lengthDelimitedField(TENSOR_NAME, utf8.encode(name)),
    ],
    lengthDelimitedBytes(TENSOR_RAW_DATA, [new Uint8Array(values.buffer, values.byteOffset, values.byteLength)]),
  ]);
}

/** A length-delimited field of a graph, with where it starts, tag included. */
export interface GraphField extends Field {
  tagStart: number;
}

/** The length-delimited fields of `graph` (nodes, initializers, inputs, outputs, value infos, …). */
export function graphFieldsOf(model: Uint8Array, graph: Field): GraphField[] {
  const graphFields: GraphField[] = [];
  let tagStart = graph.start;
  for (const field of fields(model, graph.start, graph.end)) {
    if (field.wireType === WIRE_LENGTH_DELIMITED) graphFields.push({ ...field, tagStart });
    tagStart = field.end;
  }
  return graphFields;
}

/**
 * `model` with fields of its graph replaced in place (`replaced`: encoded fields, by the tag
 * start of the field they replace), others dropped, and `appended` fields added at the end of
 * the graph; every other byte copied.
 */
export function editedGraph(
  model: Uint8Array,
  graph: Field,
  graphFields: readonly GraphField[],
  {
    replaced,
    dropped = new Set(),
    appended = [],
  }: { replaced: Map<number, ArrayLike<number>>; dropped?: Set<number>; appended?: readonly ArrayLike<number>[] },
): Uint8Array {
  const parts: Uint8Array[] = [];
  let copiedFrom = graph.start;
  for (const field of graphFields) {
    const replacement = replaced.get(field.tagStart);
    if (!replacement && !dropped.has(field.tagStart)) continue;
    parts.push(model.subarray(copiedFrom, field.tagStart));
    if (replacement) parts.push(asBytes(replacement));
    copiedFrom = field.end;
  }
  parts.push(model.subarray(copiedFrom, graph.end), ...appended.map(asBytes));
  return replacePayload(model, MODEL_GRAPH, graph.start, graph.end, parts);
}
