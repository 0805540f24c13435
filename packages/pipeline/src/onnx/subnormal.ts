/**
 * Zeroes subnormal float32 weights in a serialised ONNX model, and weights too small to matter
 * that lead to subnormal arithmetic all the same (zeroNegligibleWeights).
 *
 * Several of the default models hold weights below float32's normal range. x86 CPUs run
 * arithmetic on subnormals through a slow microcode path, which made fr_feature about 3.5×
 * slower; onnxruntime's `set_denormal_as_zero` flag does not reach the weights themselves.
 * Values that small cannot change a float32 result that matters, and measured outputs stay
 * bit-identical, so they are set to +0 before the session is created.
 *
 * Only the bytes of float tensors are rewritten, in place in a copy of the model: a float
 * keeps its 4 bytes whatever its value, so no protobuf re-serialisation is needed. A small
 * protobuf walker finds those bytes: ModelProto.graph → GraphProto.initializer and
 * Constant-node attributes (including nested subgraphs) → TensorProto.{float_data,raw_data}.
 */

import { fields, ProtobufFormatError, WIRE_LENGTH_DELIMITED, type Field } from './protobuf.js';
import {
  ATTRIBUTE_G,
  ATTRIBUTE_GRAPHS,
  ATTRIBUTE_T,
  ATTRIBUTE_TENSORS,
  DATA_TYPE_FLOAT,
  GRAPH_INITIALIZER,
  GRAPH_NODE,
  graphFieldsOf,
  holdsFloatValues,
  MODEL_GRAPH,
  modelGraph,
  NODE_ATTRIBUTE,
  readNode,
  readTensor,
} from './onnx-fields.js';

/** Byte ranges holding little-endian float32 values of one TensorProto. */
function floatPayloads(bytes: Uint8Array, start: number, end: number): Array<[number, number]> {
  const tensor = readTensor(bytes, start, end);
  if (tensor.dataType !== DATA_TYPE_FLOAT || tensor.external) return [];
  return tensor.payloads.map((payload) => [payload.start, payload.end]);
}

function collectGraphTensors(bytes: Uint8Array, start: number, end: number, out: Array<[number, number]>): void {
  for (const field of fields(bytes, start, end)) {
    if (field.wireType !== WIRE_LENGTH_DELIMITED) continue;
    if (field.number === GRAPH_INITIALIZER) out.push(...floatPayloads(bytes, field.start, field.end));
    else if (field.number === GRAPH_NODE) {
      for (const nodeField of fields(bytes, field.start, field.end)) {
        if (nodeField.number !== NODE_ATTRIBUTE || nodeField.wireType !== WIRE_LENGTH_DELIMITED) continue;
        for (const attribute of fields(bytes, nodeField.start, nodeField.end)) {
          if (attribute.wireType !== WIRE_LENGTH_DELIMITED) continue;
          if (attribute.number === ATTRIBUTE_T || attribute.number === ATTRIBUTE_TENSORS) {
            out.push(...floatPayloads(bytes, attribute.start, attribute.end));
          } else if (attribute.number === ATTRIBUTE_G || attribute.number === ATTRIBUTE_GRAPHS) {
            collectGraphTensors(bytes, attribute.start, attribute.end, out);
          }
        }
      }
    }
  }
}

export interface SubnormalReport {
  /** The model with every subnormal float32 weight replaced by +0. */
  bytes: Uint8Array;
  floatWeights: number;
  zeroedWeights: number;
}

const EXPONENT_MASK = 0x7f800000;
const MANTISSA_MASK = 0x007fffff;

/**
 * Returns a copy of `model` with subnormal float32 weights zeroed. Throws when the bytes
 * are not a parseable ONNX ModelProto (the caller reports the model as failed).
 */
export function zeroSubnormalWeights(model: Uint8Array): SubnormalReport {
  const payloads: Array<[number, number]> = [];
  let sawGraph = false;
  for (const field of fields(model, 0, model.length)) {
    if (field.number === MODEL_GRAPH && field.wireType === WIRE_LENGTH_DELIMITED) {
      sawGraph = true;
      collectGraphTensors(model, field.start, field.end, payloads);
    }
  }
  if (!sawGraph) throw new ProtobufFormatError('no graph in ONNX model');

  const patched = new Uint8Array(model);
  const view = new DataView(patched.buffer, patched.byteOffset, patched.byteLength);
  let floatWeights = 0;
  let zeroedWeights = 0;
  for (const [start, end] of payloads) {
    for (let offset = start; offset + 4 <= end; offset += 4) {
      floatWeights++;
      const bits = view.getUint32(offset, true);
      if ((bits & EXPONENT_MASK) === 0 && (bits & MANTISSA_MASK) !== 0) {
        view.setUint32(offset, 0, true);
        zeroedWeights++;
      }
    }
  }
  return { bytes: patched, floatWeights, zeroedWeights };
}

/**
 * Below this a weight is negligible (zeroNegligibleWeights). Its product with an activation is
 * 2^-26 of that activation times float32's resolution (2^-24): it can move a sum only where the
 * sum is itself that much smaller than what it reads, which in a network of activations of order
 * one happens only in channels that weight decay has left dead, whose values reach no output.
 */
export const NEGLIGIBLE_WEIGHT = 2 ** -50;

/** The inputs of each operator that hold weights (by position): those a negligible value may be zeroed in. */
const WEIGHT_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Conv: [1, 2],
  ConvTranspose: [1, 2],
  Gemm: [1, 2],
  MatMul: [1],
  PRelu: [1],
};

/** Whether an AttributeProto holds a graph or graphs. */
function holdsGraph(model: Uint8Array, attribute: Field): boolean {
  for (const field of fields(model, attribute.start, attribute.end)) {
    if (field.number === ATTRIBUTE_G || field.number === ATTRIBUTE_GRAPHS) return true;
  }
  return false;
}

/**
 * Returns a copy of `model` with every weight below {@link NEGLIGIBLE_WEIGHT} in magnitude zeroed,
 * in the initializers that only convolutions, matrix products and PRelu read as weights (an
 * initializer read anywhere else, say as an epsilon, is left alone; so is a model with subgraphs).
 *
 * Subnormal weights are not the only way to subnormal arithmetic. fr_feature holds some 190,000
 * weights between 1e-38 and 1e-15, left by weight decay, mostly in channels that it killed: a
 * dead channel's output is its bias (−6.5e-20, say), a PRelu slope of 4.6e-20 makes that 3e-39
 * at every pixel, and the next layer multiplies it by more such weights. Intel CPUs take a
 * microcode assist on each of those operations: fr_feature ran in 14.2 ms on a Xeon (Granite
 * Rapids) where AMD's Zen 5 runs it in 5.0, and in 4.3 ms with these weights zeroed; its outputs
 * stayed bit-identical (test/pipeline/subnormal.test.ts).
 */
export function zeroNegligibleWeights(model: Uint8Array): { bytes: Uint8Array; zeroedWeights: number } {
  const patched = new Uint8Array(model);
  return { bytes: patched, zeroedWeights: zeroNegligibleInPlace(patched) };
}

/**
 * {@link zeroSubnormalWeights}, then {@link zeroNegligibleWeights} on its copy: what every session is opened with
 * (onnx/session.ts). `zeroedWeights` counts both.
 */
export function zeroTinyWeights(model: Uint8Array): SubnormalReport {
  const report = zeroSubnormalWeights(model);
  return { ...report, zeroedWeights: report.zeroedWeights + zeroNegligibleInPlace(report.bytes) };
}

/** The work of {@link zeroNegligibleWeights}, in `patched` itself; how many weights it zeroed. */
function zeroNegligibleInPlace(patched: Uint8Array): number {
  const graph = modelGraph(patched);
  const graphFields = graphFieldsOf(patched, graph);
  const onlyWeights = new Map<string, boolean>();
  for (const field of graphFields) {
    if (field.number !== GRAPH_NODE) continue;
    const node = readNode(patched, field.start, field.end);
    // A subgraph (If, Loop, Scan) may read any outer initializer by name, unseen here: leave the model as it is.
    if (node.attributes.some((attribute) => holdsGraph(patched, attribute))) return 0;
    const weightInputs = node.domain === '' ? (WEIGHT_INPUTS[node.opType] ?? []) : [];
    node.inputs.forEach((input, position) => {
      onlyWeights.set(input, (onlyWeights.get(input) ?? true) && weightInputs.includes(position));
    });
  }
  const view = new DataView(patched.buffer, patched.byteOffset, patched.byteLength);
  let zeroedWeights = 0;
  for (const field of graphFields) {
    if (field.number !== GRAPH_INITIALIZER) continue;
    const tensor = readTensor(patched, field.start, field.end);
    if (!holdsFloatValues(tensor) || onlyWeights.get(tensor.name) !== true) continue;
    const payload = tensor.payloads[0]!;
    for (let offset = payload.start; offset + 4 <= payload.end; offset += 4) {
      const value = view.getFloat32(offset, true);
      if (value !== 0 && Math.abs(value) < NEGLIGIBLE_WEIGHT) {
        view.setUint32(offset, 0, true);
        zeroedWeights++;
      }
    }
  }
  return zeroedWeights;
}

export { ProtobufFormatError };
