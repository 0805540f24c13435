/**
 * Pads a model's odd channel counts to onnxruntime's block size, in memory, so that its CPU
 * provider keeps more of the network in the blocked (NCHWc) layout. onnxruntime blocks a
 * convolution only when its channel counts are multiples of the block; MobileNet-style
 * bottlenecks with expansions of 103, 13, 231 … channels (fr_liveness, MiniFASNet) and
 * ShuffleNet branches of 58 (fr_pose) therefore ran their inner convolutions unblocked, and each
 * such tensor was reordered out of the blocked layout and back around them: ReorderOutput alone
 * was a quarter of fr_liveness' time, and the PRelu between them could not take prelu.ts's
 * blocked form.
 *
 * A padded region is a chain `Conv (group 1, E outputs) → {PRelu | Relu | depthwise Conv over E}…
 * → Conv (group 1, E inputs)`, a PRelu or a depthwise Conv inside, with E not a multiple of
 * {@link NCHWC_BLOCK} and nothing else reading its tensors or its weights. E grows to E′ (the next
 * multiple of the block): the first convolution gets E′ − E more output channels of zero weights
 * and zero bias, the PRelu slopes and depthwise convolutions zero-weighted channels (and `group`
 * E′), and the last convolution E′ − E more input channels of zero weights. The added channels
 * hold zeros from end to end (a zero-weight sum plus a zero bias, PRelu(0) = Relu(0) = 0, a
 * depthwise convolution of zeros), and the last convolution adds products with zero to each real
 * output; the real channels compute what they did, though in the blocked kernels' order of
 * summation (outputs within float32 rounding: test/pipeline/channel-padding.test.ts).
 * One thread, AMD EPYC: fr_liveness 4.5 → 1.9 ms, fr_pose 2.6 → 2.3 ms (tools/eval/bench-cpu-rewrites.ts).
 */
import { fields, lengthDelimitedField } from './protobuf.js';
import {
  editedGraph,
  encodeFloatInitializer,
  floatValues,
  GRAPH_INITIALIZER,
  GRAPH_INPUT,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  GRAPH_VALUE_INFO,
  type GraphField,
  graphFieldsOf,
  holdsFloatValues,
  intAttribute,
  modelGraph,
  NODE_ATTRIBUTE,
  type NodeFields,
  readAttribute,
  readNode,
  readTensor,
  type TensorFields,
  textOf,
  VALUE_INFO_NAME,
} from './onnx-fields.js';
import { NCHWC_BLOCK } from './prelu.js';

export interface ChannelPadding {
  bytes: Uint8Array;
  /** Regions padded; 0 means `bytes` is the model itself. */
  padded: number;
}

interface GraphNode {
  field: GraphField;
  node: NodeFields;
}

/** The nodes of one region and its channel counts. */
interface Region {
  expand: GraphNode;
  middle: GraphNode[];
  project: GraphNode;
  channels: number;
  paddedChannels: number;
}

function intAttributeOf(bytes: Uint8Array, node: NodeFields, name: string): number | undefined {
  for (const attribute of node.attributes) {
    const read = readAttribute(bytes, attribute);
    if (read.name === name) return read.value;
  }
  return undefined;
}

function isDefaultDomain(node: NodeFields): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

/** `values` of shape `dims` grown along `axis` to `size`, the new entries zero. */
function padAxis(values: Float32Array, dims: readonly number[], axis: number, size: number): Float32Array {
  const outer = dims.slice(0, axis).reduce((product, dim) => product * dim, 1);
  const inner = dims.slice(axis + 1).reduce((product, dim) => product * dim, 1);
  const from = dims[axis]! * inner;
  const to = size * inner;
  const padded = new Float32Array(outer * to);
  for (let index = 0; index < outer; index++) padded.set(values.subarray(index * from, (index + 1) * from), index * to);
  return padded;
}

/** The node's field with its `group` attribute set to `group` (every other field copied). */
function withGroup(bytes: Uint8Array, { field }: GraphNode, group: number): number[] {
  const payload: number[] = [];
  let tagStart = field.start;
  for (const nodeField of fields(bytes, field.start, field.end)) {
    if (nodeField.number === NODE_ATTRIBUTE && readAttribute(bytes, nodeField).name === 'group') {
      payload.push(...intAttribute('group', group));
    } else {
      payload.push(...bytes.subarray(tagStart, nodeField.end));
    }
    tagStart = nodeField.end;
  }
  return lengthDelimitedField(GRAPH_NODE, payload);
}

/**
 * `model` with its odd-channel bottlenecks padded to the block size (see the module comment).
 * A model with a subgraph (If, Loop, Scan) is left as it is: a subgraph may read a tensor or a
 * weight by name.
 */
export function channelPaddedModel(model: Uint8Array, block = NCHWC_BLOCK): ChannelPadding {
  const graph = modelGraph(model);
  const graphFields = graphFieldsOf(model, graph);
  const initializers = new Map<string, { tensor: TensorFields; field: GraphField }>();
  const nodes: GraphNode[] = [];
  /** The nodes reading each tensor or weight, by name. */
  const readersOf = new Map<string, GraphNode[]>();
  const graphNames = new Set<string>();
  for (const field of graphFields) {
    if (field.number === GRAPH_INITIALIZER) {
      const tensor = readTensor(model, field.start, field.end);
      initializers.set(tensor.name, { tensor, field });
    } else if (field.number === GRAPH_NODE) {
      const node = readNode(model, field.start, field.end);
      if (node.hasSubgraph) return { bytes: model, padded: 0 };
      const graphNode = { field, node };
      nodes.push(graphNode);
      for (const input of node.inputs) {
        const readers = readersOf.get(input);
        if (readers) readers.push(graphNode);
        else readersOf.set(input, [graphNode]);
      }
    } else if (field.number === GRAPH_INPUT || field.number === GRAPH_OUTPUT) {
      for (const valueInfo of fields(model, field.start, field.end)) {
        if (valueInfo.number === VALUE_INFO_NAME) graphNames.add(textOf(model, valueInfo));
      }
    }
  }
  /** The tensor's one reader, where nothing else (another node, the graph's outputs) reads it. */
  const onlyReader = (name: string): GraphNode | null => {
    const readers = readersOf.get(name);
    return readers?.length === 1 && !graphNames.has(name) ? readers[0]! : null;
  };
  /**
   * The shape of a float32 weight only its node reads (not a graph input or output); its values are
   * read only for the weights padded.
   */
  const ownWeightDims = (name: string | undefined): number[] | null => {
    const initializer = name === undefined ? undefined : initializers.get(name);
    return initializer && onlyReader(name!) && holdsFloatValues(initializer.tensor) ? initializer.tensor.dims : null;
  };
  /** An optional bias input, absent or of `channels` values. */
  const biasFits = (name: string | undefined, channels: number): boolean =>
    name === undefined || ownWeightDims(name)?.join() === `${channels}`;
  const isConv = (node: NodeFields): boolean => node.opType === 'Conv' && isDefaultDomain(node);

  const regions: Region[] = [];
  const inRegion = new Set<GraphNode>();
  for (const expand of nodes) {
    const { node } = expand;
    if (!isConv(node) || node.outputs.length !== 1 || (intAttributeOf(model, node, 'group') ?? 1) !== 1) continue;
    const weight = ownWeightDims(node.inputs[1]);
    const channels = weight?.[0];
    if (weight?.length !== 4 || channels === undefined || channels % block === 0) continue;
    if (!biasFits(node.inputs[2], channels)) continue;
    const middle: GraphNode[] = [];
    let project: GraphNode | null = null;
    let tensor = node.outputs[0]!;
    for (let reader = onlyReader(tensor); reader; reader = onlyReader(tensor)) {
      const { node: next } = reader;
      if (next.inputs[0] !== tensor || next.outputs.length !== 1 || !isDefaultDomain(next)) break;
      const nextWeight = ownWeightDims(next.inputs[1]);
      if (
        (next.opType === 'PRelu' && nextWeight?.join() === `${channels},1,1`) ||
        (next.opType === 'Relu' && next.inputs.length === 1)
      ) {
        middle.push(reader);
      } else if (
        isConv(next) &&
        intAttributeOf(model, next, 'group') === channels &&
        nextWeight?.length === 4 &&
        nextWeight[0] === channels &&
        nextWeight[1] === 1 &&
        biasFits(next.inputs[2], channels)
      ) {
        middle.push(reader);
      } else {
        const group = isConv(next) ? (intAttributeOf(model, next, 'group') ?? 1) : undefined;
        if (group === 1 && nextWeight?.length === 4 && nextWeight[1] === channels) project = reader;
        break;
      }
      tensor = next.outputs[0]!;
    }
    // A depthwise convolution or a PRelu is what runs unblocked, or is reordered around, without
    // the padding; a Conv → Relu → Conv chain alone is left as it is (fr_detect's, where padding
    // bought nothing measurable and would have moved every detection box by float rounding).
    if (!project || !middle.some(({ node: inside }) => inside.opType !== 'Relu')) continue;
    // A convolution that ends one region and starts the next would have its weights padded twice.
    const members = [expand, ...middle, project];
    if (members.some((member) => inRegion.has(member))) continue;
    for (const member of members) inRegion.add(member);
    regions.push({ expand, middle, project, channels, paddedChannels: Math.ceil(channels / block) * block });
  }
  if (regions.length === 0) return { bytes: model, padded: 0 };

  const replaced = new Map<number, ArrayLike<number>>();
  const paddedTensors = new Set<string>();
  const padWeight = (name: string, axis: number, size: number): void => {
    const { tensor, field } = initializers.get(name)!;
    const values = floatValues(model, tensor)!;
    const dims = tensor.dims.map((dim, index) => (index === axis ? size : dim));
    replaced.set(field.tagStart, encodeFloatInitializer(name, dims, padAxis(values, tensor.dims, axis, size)));
  };
  for (const { expand, middle, project, paddedChannels } of regions) {
    padWeight(expand.node.inputs[1]!, 0, paddedChannels);
    if (expand.node.inputs[2] !== undefined) padWeight(expand.node.inputs[2], 0, paddedChannels);
    paddedTensors.add(expand.node.outputs[0]!);
    for (const inside of middle) {
      if (inside.node.opType !== 'Relu') padWeight(inside.node.inputs[1]!, 0, paddedChannels);
      if (inside.node.opType === 'Conv') {
        if (inside.node.inputs[2] !== undefined) padWeight(inside.node.inputs[2], 0, paddedChannels);
        replaced.set(inside.field.tagStart, withGroup(model, inside, paddedChannels));
      }
      paddedTensors.add(inside.node.outputs[0]!);
    }
    padWeight(project.node.inputs[1]!, 1, paddedChannels);
  }
  // Declared shapes of the padded tensors would contradict the new ones: they are dropped, and
  // onnxruntime infers them.
  const dropped = new Set<number>();
  for (const field of graphFields) {
    if (field.number !== GRAPH_VALUE_INFO) continue;
    for (const valueInfo of fields(model, field.start, field.end)) {
      if (valueInfo.number === VALUE_INFO_NAME && paddedTensors.has(textOf(model, valueInfo))) {
        dropped.add(field.tagStart);
      }
    }
  }
  return { bytes: editedGraph(model, graph, graphFields, { replaced, dropped }), padded: regions.length };
}
