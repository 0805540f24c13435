/**
 * Gives a model whose batch dimension is fixed at 1 a free batch dimension, in memory, so that
 * one `run` can serve several faces (what the batcher needs). The edits, which
 * ../shared/gpu/make-batch-dynamic.py makes with the Python onnx package, are made here in
 * place, each keeping its field's byte length, so no protobuf re-serialisation is needed:
 * - graph inputs, outputs and value_info: a first dimension `dim_value: 1` (2 bytes) becomes an
 *   unnamed `dim_param` (2 bytes), which onnxruntime treats as unknown;
 * - Reshape target shapes held in int64 initializers or Constant nodes: a first entry 1 becomes
 *   -1 (or 0, "copy the input's dimension", when another entry is already -1).
 * Whether a model's outputs then equal its one-by-one outputs is not a property of these edits
 * (a graph could bake the batch size in elsewhere); test/pipeline/batch.test.ts checks it per model.
 */
import { fields, ProtobufFormatError, WIRE_LENGTH_DELIMITED, WIRE_VARINT, type Field } from './protobuf.js';
import {
  ATTRIBUTE_T,
  DATA_TYPE_INT64,
  DIMENSION_VALUE,
  GRAPH_INITIALIZER,
  GRAPH_INPUT,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  GRAPH_VALUE_INFO,
  MODEL_GRAPH,
  SHAPE_DIM,
  TENSOR_RAW_DATA,
  TENSOR_TYPE_SHAPE,
  TYPE_TENSOR,
  VALUE_INFO_TYPE,
  readNode,
  readTensor,
} from './onnx-fields.js';

/** Tag bytes of `dim_value` (field 1, varint) and of `dim_param` (field 2, length-delimited). */
const DIM_VALUE_TAG = 0x08;
const DIM_PARAM_TAG = 0x12;

function only(bytes: Uint8Array, start: number, end: number, number: number, wireType: number): Field[] {
  return [...fields(bytes, start, end)].filter((field) => field.number === number && field.wireType === wireType);
}

function child(bytes: Uint8Array, parent: Field | undefined, number: number): Field | undefined {
  return parent ? only(bytes, parent.start, parent.end, number, WIRE_LENGTH_DELIMITED)[0] : undefined;
}

/** Turns a ValueInfoProto's first dimension from 1 into unknown; true when it did. */
function freeFirstDimension(bytes: Uint8Array, valueInfo: Field): boolean {
  const shape = child(bytes, child(bytes, child(bytes, valueInfo, VALUE_INFO_TYPE), TYPE_TENSOR), TENSOR_TYPE_SHAPE);
  const first = child(bytes, shape, SHAPE_DIM);
  if (!first) return false;
  const value = only(bytes, first.start, first.end, DIMENSION_VALUE, WIRE_VARINT)[0];
  if (!value || value.varint !== 1 || bytes[value.start - 1] !== DIM_VALUE_TAG || value.end !== value.start + 1) {
    return false;
  }
  bytes[value.start - 1] = DIM_PARAM_TAG;
  bytes[value.start] = 0;
  return true;
}

/** Rewrites an int64 shape tensor's first entry 1 → -1 (or 0); true when it did. */
function freeReshapeTarget(bytes: Uint8Array, tensor: Field): boolean {
  const { dataType, payloads } = readTensor(bytes, tensor.start, tensor.end);
  const raw = payloads.find((payload) => payload.number === TENSOR_RAW_DATA);
  if (dataType !== DATA_TYPE_INT64 || !raw || raw.end - raw.start < 8) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset + raw.start, raw.end - raw.start);
  if (view.getBigInt64(0, true) !== 1n) return false;
  let hasWildcard = false;
  for (let offset = 8; offset + 8 <= view.byteLength; offset += 8)
    hasWildcard ||= view.getBigInt64(offset, true) === -1n;
  view.setBigInt64(0, hasWildcard ? 0n : -1n, true);
  return true;
}

export interface BatchEdit {
  /** The model with a free batch dimension. */
  bytes: Uint8Array;
  /** Graph inputs/outputs/value_info and Reshape targets edited. */
  freedDimensions: number;
  reshapeTargets: number;
}

/** Returns `model` (edited in place and returned) with its batch dimension freed. */
export function freeBatchDimension(model: Uint8Array): BatchEdit {
  const graph = only(model, 0, model.length, MODEL_GRAPH, WIRE_LENGTH_DELIMITED)[0];
  if (!graph) throw new ProtobufFormatError('no graph in ONNX model');
  let freedDimensions = 0;
  let reshapeTargets = 0;
  const reshapeShapes = new Set<string>();
  const constants = new Map<string, Field>();
  const graphFields = [...fields(model, graph.start, graph.end)];
  for (const field of graphFields) {
    if (field.number !== GRAPH_NODE || field.wireType !== WIRE_LENGTH_DELIMITED) continue;
    const node = readNode(model, field.start, field.end);
    if (node.opType === 'Reshape') {
      const shapeInput = node.inputs[1];
      if (shapeInput) reshapeShapes.add(shapeInput);
    } else if (node.opType === 'Constant') {
      const output = node.outputs[0];
      const tensor = child(model, node.attributes[0], ATTRIBUTE_T);
      if (output && tensor) constants.set(output, tensor);
    }
  }
  for (const field of graphFields) {
    if (field.wireType !== WIRE_LENGTH_DELIMITED) continue;
    if (field.number === GRAPH_INPUT || field.number === GRAPH_OUTPUT || field.number === GRAPH_VALUE_INFO) {
      if (freeFirstDimension(model, field)) freedDimensions++;
    } else if (field.number === GRAPH_INITIALIZER) {
      if (reshapeShapes.has(readTensor(model, field.start, field.end).name)) {
        if (freeReshapeTarget(model, field)) reshapeTargets++;
      }
    }
  }
  for (const [name, tensor] of constants) {
    if (reshapeShapes.has(name) && freeReshapeTarget(model, tensor)) reshapeTargets++;
  }
  return { bytes: model, freedDimensions, reshapeTargets };
}
