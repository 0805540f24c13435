/**
 * Rewrites the PRelu nodes of a serialised ONNX model, in memory, into operators that
 * onnxruntime's CPU provider runs vectorised. Its own PRelu (1.29) is a scalar loop with a branch
 * per element (`x > 0 ? x : x · s`): on real feature maps the signs are unpredictable, so its cost
 * follows the picture (fr_liveness 5.6 ms on real face crops against 4.0 on random tensors), and
 * every PRelu also moves its tensor out of onnxruntime's blocked (NCHWc) layout and back. In the
 * service under load that loop took a third of onnxruntime's time (perf, docs/benchmarks.md,
 * "Seventh pass"). Two rewrites, both giving PRelu's own values:
 *
 * - **blocked** (x86-64), for a per-channel slope (shape [C, 1, 1]) with C a multiple of
 *   {@link NCHWC_BLOCK}: `Relu(x) + Conv(Relu(Conv(x, −1)), −s)`, both Conv 1×1 and per channel
 *   (group = C), so that onnxruntime fuses the inner Relu into the first and the Add into the
 *   second and the tensor stays blocked. Where x ≥ 0 the negative part is 0 and x + 0 is x; where
 *   x < 0, (−s)·(−x) is PRelu's product s·x, added to 0.
 * - **max**, for other slopes all at most 1: `Max(x, x · s)`, in the plain layout (a group
 *   convolution over a channel count that is not a block multiple is not blocked, and cost more).
 *   Where x ≥ 0, x·s ≤ x; where x < 0, x·s ≥ x; either way Max picks PRelu's value itself.
 *
 * The outputs are bit-identical but for the sign of a zero. Each rewritten node is replaced in
 * place by its nodes (the graph stays in topological order); new weights are appended to the
 * initializers, and slopes no other node reads are dropped. fr_feature (33 PRelu, all blocked):
 * 8.1 → 3.0 ms on real aligned faces; fr_liveness (3 blocked, 30 max): 5.6 → 4.0 ms on real crops
 * (tools/eval/bench-cpu-rewrites.ts).
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
  graphFieldsOf,
  intAttribute,
  modelGraph,
  NODE_INPUT,
  NODE_NAME,
  NODE_OP_TYPE,
  NODE_OUTPUT,
  type NodeFields,
  readNode,
  readTensor,
  type TensorFields,
  textOf,
  VALUE_INFO_NAME,
} from './onnx-fields.js';

/**
 * Channels per block of onnxruntime's NCHWc layout: 16 with AVX-512, 8 with AVX2. A multiple of
 * 16 is blocked on both.
 */
export const NCHWC_BLOCK = 16;

/** Whether onnxruntime's CPU provider has its blocked layout here: on x86-64 only. */
export const BLOCKED_LAYOUT = process.arch === 'x64';

const utf8 = new TextEncoder();

export interface PReluRewrite {
  bytes: Uint8Array;
  /** PRelu nodes rewritten; 0 means `bytes` is the model itself. */
  rewritten: number;
}

interface Slope {
  dims: number[];
  values: Float32Array;
}

interface Initializer {
  tensor: TensorFields;
  /** Where its field starts, tag included. */
  tagStart: number;
}

function encodeNode(
  opType: string,
  name: string,
  inputs: readonly string[],
  output: string,
  attributes: number[] = [],
): number[] {
  return lengthDelimitedField(GRAPH_NODE, [
    ...inputs.flatMap((input) => lengthDelimitedField(NODE_INPUT, utf8.encode(input))),
    ...lengthDelimitedField(NODE_OUTPUT, utf8.encode(output)),
    ...lengthDelimitedField(NODE_NAME, utf8.encode(name)),
    ...lengthDelimitedField(NODE_OP_TYPE, utf8.encode(opType)),
    ...attributes,
  ]);
}

/** The nodes and weights computing PRelu(x, slope) into `y`; every new name derives from `y`'s. */
function blockedPRelu(
  x: string,
  slope: Float32Array,
  y: string,
  name: string,
): { nodes: number[]; weights: Uint8Array[] } {
  const channels = slope.length;
  const prefix = `${y}/facegate_prelu`;
  const perChannel = intAttribute('group', channels);
  return {
    nodes: [
      ...encodeNode('Relu', `${name}/positive`, [x], `${prefix}/positive`),
      ...encodeNode('Conv', `${name}/negate`, [x, `${prefix}/minus_one`], `${prefix}/negated`, perChannel),
      ...encodeNode('Relu', `${name}/negative_part`, [`${prefix}/negated`], `${prefix}/negative_part`),
      ...encodeNode(
        'Conv',
        `${name}/scale`,
        [`${prefix}/negative_part`, `${prefix}/minus_slope`],
        `${prefix}/scaled`,
        perChannel,
      ),
      ...encodeNode('Add', `${name}/sum`, [`${prefix}/scaled`, `${prefix}/positive`], y),
    ],
    weights: [
      encodeFloatInitializer(`${prefix}/minus_one`, [channels, 1, 1, 1], new Float32Array(channels).fill(-1)),
      encodeFloatInitializer(
        `${prefix}/minus_slope`,
        [channels, 1, 1, 1],
        slope.map((value) => -value),
      ),
    ],
  };
}

/** Max(x, x · slope): PRelu(x) wherever every slope is at most 1, in the plain layout. */
function maxPRelu(x: string, slope: string, y: string, name: string): number[] {
  const scaled = `${y}/facegate_prelu/scaled`;
  return [
    ...encodeNode('Mul', `${name}/scale`, [x, slope], scaled),
    ...encodeNode('Max', `${name}/max`, [x, scaled], y),
  ];
}

type Rewrite = 'blocked' | 'max';

function rewriteFor(node: NodeFields, slope: Slope | null, blocked: boolean): Rewrite | null {
  if (node.opType !== 'PRelu' || (node.domain !== '' && node.domain !== 'ai.onnx')) return null;
  if (node.inputs.length !== 2 || node.outputs.length !== 1 || !slope) return null;
  const [channels, height, width] = slope.dims;
  const perChannel = slope.dims.length === 3 && height === 1 && width === 1 && slope.values.length === channels;
  if (blocked && perChannel && channels! % NCHWC_BLOCK === 0) return 'blocked';
  return slope.values.every((value) => value <= 1) ? 'max' : null;
}

/**
 * `model` with its PRelu nodes vectorised (see the module comment). `blocked`: whether the
 * blocked form may be used; onnxruntime has its blocked layout on x86-64 only, and elsewhere
 * the per-channel convolutions would run unblocked, untried, so there only the Max form is made.
 */
export function vectorisedPReluModel(model: Uint8Array, { blocked = BLOCKED_LAYOUT } = {}): PReluRewrite {
  const graph = modelGraph(model);
  const graphFields = graphFieldsOf(model, graph);
  const initializers = new Map<string, Initializer>();
  for (const field of graphFields) {
    if (field.number !== GRAPH_INITIALIZER) continue;
    const tensor = readTensor(model, field.start, field.end);
    initializers.set(tensor.name, { tensor, tagStart: field.tagStart });
  }
  // A slope's values, read only for the PRelu nodes' slopes (not every weight of the model).
  const slopeOf = (node: NodeFields): Slope | null => {
    const initializer = node.opType === 'PRelu' ? initializers.get(node.inputs[1] ?? '') : undefined;
    const values = initializer ? floatValues(model, initializer.tensor) : null;
    return values ? { dims: initializer!.tensor.dims, values } : null;
  };

  const replaced = new Map<number, number[]>();
  const weights: Uint8Array[] = [];
  const stillRead = new Set<string>();
  const replacedSlopes = new Set<string>();
  // A subgraph (If, Loop, Scan) may read an outer initializer by name: then no slope is dropped.
  let keepEverySlope = false;
  for (const field of graphFields) {
    if (field.number === GRAPH_INPUT || field.number === GRAPH_OUTPUT) {
      // A slope listed among the graph's inputs (models before IR 4 list every initializer there)
      // stays an initializer: dropping it would turn it into an input the caller must feed.
      for (const valueInfo of fields(model, field.start, field.end)) {
        if (valueInfo.number === VALUE_INFO_NAME) stillRead.add(textOf(model, valueInfo));
      }
    }
    if (field.number !== GRAPH_NODE) continue;
    const node = readNode(model, field.start, field.end);
    keepEverySlope ||= node.hasSubgraph;
    const slope = slopeOf(node);
    const rewrite = rewriteFor(node, slope, blocked);
    if (rewrite !== 'blocked') for (const input of node.inputs) stillRead.add(input);
    if (rewrite === null) continue;
    const [x, slopeName] = node.inputs as [string, string];
    const y = node.outputs[0]!;
    const name = node.name || y;
    if (rewrite === 'max') {
      replaced.set(field.tagStart, maxPRelu(x, slopeName, y, name));
      continue;
    }
    const rewritten = blockedPRelu(x, slope!.values, y, name);
    replaced.set(field.tagStart, rewritten.nodes);
    weights.push(...rewritten.weights);
    replacedSlopes.add(slopeName);
  }
  if (replaced.size === 0) return { bytes: model, rewritten: 0 };

  const dropped = new Set(
    [...replacedSlopes]
      .filter((name) => !keepEverySlope && !stillRead.has(name))
      .map((name) => initializers.get(name)!.tagStart),
  );
  const bytes = editedGraph(model, graph, graphFields, { replaced, dropped, appended: weights });
  return { bytes, rewritten: replaced.size };
}
