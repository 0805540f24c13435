/**
 * Exposes intermediate tensors of an ONNX graph as outputs, in memory, so that a run returns
 * them (e.g. a recogniser's early feature maps for morphing-attack detection). Unlike the
 * in-place edits of batch.ts and subnormal.ts this changes the graph's length, so the model
 * message is re-serialised around it: every other field is copied byte for byte.
 */
import { fields, lengthDelimitedField, ProtobufFormatError, replacePayload, varintField, withTag } from './protobuf.js';
import {
  DATA_TYPE_FLOAT,
  GRAPH_INITIALIZER,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  MODEL_GRAPH,
  modelGraph,
  readNode,
  readTensor,
  TENSOR_TYPE_ELEMENT_TYPE,
  TYPE_TENSOR,
  VALUE_INFO_NAME,
  VALUE_INFO_TYPE,
} from './onnx-fields.js';

/** A graph output entry: the tensor's name and type float32, its shape left for onnxruntime to infer. */
function floatOutput(name: string): number[] {
  const type = lengthDelimitedField(TYPE_TENSOR, varintField(TENSOR_TYPE_ELEMENT_TYPE, DATA_TYPE_FLOAT));
  return lengthDelimitedField(GRAPH_OUTPUT, [
    ...lengthDelimitedField(VALUE_INFO_NAME, new TextEncoder().encode(name)),
    ...lengthDelimitedField(VALUE_INFO_TYPE, type),
  ]);
}

/**
 * The graph's fields to drop when only `names` are to be computed: its outputs, the nodes that
 * lead to none of `names` (onnxruntime runs every node of a graph, needed or not) and the
 * initializers only those nodes read.
 */
function unneededRanges(
  model: Uint8Array,
  graphStart: number,
  graphEnd: number,
  names: readonly string[],
): Array<[number, number]> {
  const graphFields = [...fields(model, graphStart, graphEnd)];
  const nodes = graphFields.filter((field) => field.number === GRAPH_NODE);
  const needed = new Set(names);
  const keptNodes = new Set<number>();
  // Nodes are stored in topological order: one backward pass finds every producer needed.
  for (let index = nodes.length - 1; index >= 0; index--) {
    const node = nodes[index]!;
    const { inputs, outputs } = readNode(model, node.start, node.end);
    if (!outputs.some((output) => needed.has(output))) continue;
    keptNodes.add(node.start);
    for (const input of inputs) needed.add(input);
  }
  const unneeded: Array<[number, number]> = [];
  for (const field of graphFields) {
    const drop =
      field.number === GRAPH_OUTPUT ||
      (field.number === GRAPH_NODE && !keptNodes.has(field.start)) ||
      (field.number === GRAPH_INITIALIZER && !needed.has(readTensor(model, field.start, field.end).name));
    if (drop) unneeded.push(withTag(field.number, field.start, field.end));
  }
  for (const name of names) {
    if (!nodes.some((node) => readNode(model, node.start, node.end).outputs.includes(name))) {
      throw new ProtobufFormatError(`no node of the graph produces ${name}`);
    }
  }
  return unneeded;
}

/**
 * The model with `names` (float32 tensors of its graph) as outputs, in that order: appended to
 * its outputs, or with `truncate` as its only outputs, every node and weight that does not
 * lead to them removed (a truncated network, as cheap as the layers it keeps).
 */
export function withOutputs(model: Uint8Array, names: readonly string[], truncate = false): Uint8Array {
  const graph = modelGraph(model);
  const kept: Uint8Array[] = [];
  let keptFrom = graph.start;
  for (const [start, end] of truncate ? unneededRanges(model, graph.start, graph.end, names) : []) {
    kept.push(model.subarray(keptFrom, start));
    keptFrom = end;
  }
  kept.push(model.subarray(keptFrom, graph.end), new Uint8Array(names.flatMap(floatOutput)));
  return replacePayload(model, MODEL_GRAPH, graph.start, graph.end, kept);
}
