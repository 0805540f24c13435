/**
 * Field numbers and enum values of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
 * that the in-memory model edits read and write (batch.ts, subnormal.ts, extra-outputs.ts),
 * named MESSAGE_FIELD.
 */
import { fields, ProtobufFormatError, WIRE_LENGTH_DELIMITED, type Field } from './protobuf.js';

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
