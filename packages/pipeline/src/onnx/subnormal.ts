/**
 * Zeroes subnormal float32 weights in a serialised ONNX model.
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

import { fields, ProtobufFormatError, WIRE_LENGTH_DELIMITED } from './protobuf.js';
import {
  ATTRIBUTE_G,
  ATTRIBUTE_GRAPHS,
  ATTRIBUTE_T,
  ATTRIBUTE_TENSORS,
  DATA_TYPE_FLOAT,
  GRAPH_INITIALIZER,
  GRAPH_NODE,
  MODEL_GRAPH,
  NODE_ATTRIBUTE,
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

export { ProtobufFormatError };
