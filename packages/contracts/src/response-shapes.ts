import { ERROR_CODES } from './errors.js';
import { XML_ROOT, type BiometricEndpoint } from './responses.js';

/**
 * One description of every response body, from which the XSDs and the OpenAPI document are
 * generated. The renderers in responses.ts produce these shapes; the API tests check every real
 * response against the generated XSD, so the description cannot drift from what is sent.
 */
export type XmlValueType = 'string' | 'score' | 'boolean' | 'rank' | 'pixels' | 'status';

export interface XmlElementShape {
  name: string;
  description: string;
  /** A text value, or a sequence of child elements. */
  content: XmlValueType | readonly XmlElementShape[];
  optional?: boolean;
  repeated?: boolean;
}

const text = (name: string, content: XmlValueType, description: string, optional = false): XmlElementShape => ({
  name,
  content,
  description,
  ...(optional ? { optional } : {}),
});

const qualityScore = text('quality_score', 'score', 'Face image quality in [0, 1]');
const modelId = text('model_id', 'string', 'Recognition model that produced the template');
const subjectId = text('subject_id', 'string', 'Subject identifier');

/** Extension (docs/API-CONTRACT.md): where the face was found and how live it looked. */
const faceExtension: readonly XmlElementShape[] = [
  {
    name: 'face_box',
    description: 'Extension: the detected face, in pixels of the EXIF-rotated image',
    optional: true,
    content: [
      text('x', 'pixels', 'Left edge'),
      text('y', 'pixels', 'Top edge'),
      text('width', 'pixels', 'Width'),
      text('height', 'pixels', 'Height'),
    ],
  },
  text('pad_score', 'score', 'Extension: probability that the face is live (absent when PAD is off)', true),
];

/** Elements after `<status>OK</status>`, in the reference's order, per endpoint. */
export const XML_SUCCESS_SHAPES: Readonly<Record<BiometricEndpoint, readonly XmlElementShape[]>> = {
  search: [
    {
      name: 'candidates',
      description: 'Matches with score >= threshold, best first',
      content: [
        {
          name: 'candidate',
          description: 'One enrolled subject',
          optional: true,
          repeated: true,
          content: [subjectId, text('score', 'score', 'Similarity in [0, 1]'), text('rank', 'rank', 'From 1')],
        },
      ],
    },
    qualityScore,
    modelId,
    ...faceExtension,
  ],
  verify: [
    text('match', 'boolean', 'score >= threshold'),
    text('score', 'score', 'Similarity in [0, 1]'),
    subjectId,
    qualityScore,
    modelId,
    ...faceExtension,
  ],
  enrol: [subjectId, qualityScore, modelId, ...faceExtension],
  delete: [subjectId],
};

/** Elements after `<status>CODE</status>` in an error of any biometric endpoint. */
export const XML_ERROR_SHAPE: readonly XmlElementShape[] = [
  text('message', 'string', 'Human-readable reason'),
  text('quality_score', 'score', 'The quality score that failed the gate', true),
  text('pad_score', 'score', 'The PAD score that failed the gate', true),
  text('mad_score', 'score', 'The morph score that failed the gate', true),
];

export const RESPONSE_STATUSES = ['OK', ...ERROR_CODES] as const;

export const XML_ROOTS: readonly { endpoint: BiometricEndpoint; root: string }[] = (
  Object.keys(XML_ROOT) as BiometricEndpoint[]
).map((endpoint) => ({ endpoint, root: XML_ROOT[endpoint] }));

const componentHealth = {
  type: 'object',
  properties: {
    healthy: { type: 'boolean' },
    state: { type: 'string', enum: ['ready', 'disabled', 'absent', 'failed'] },
    model: { type: 'string' },
    detail: { type: 'string' },
  },
  required: ['healthy', 'state'],
} as const;

/** JSON Schemas of the utility endpoints' bodies (health, partitions, stats, JSON errors). */
export const JSON_BODY_SCHEMAS = {
  Health: {
    type: 'object',
    properties: {
      status: { type: 'string', enum: ['healthy', 'unhealthy'] },
      components: { type: 'object', additionalProperties: { type: 'boolean' } },
      details: { type: 'object', additionalProperties: componentHealth },
    },
    required: ['status', 'components', 'details'],
  },
  Partitions: {
    type: 'object',
    properties: { partitions: { type: 'array', items: { type: 'string' } } },
    required: ['partitions'],
  },
  PartitionDeletion: {
    type: 'object',
    properties: {
      partition: { type: 'string' },
      deleted: { type: 'boolean', const: true },
      subjects: { type: 'integer', minimum: 0, description: 'subjects the partition held' },
      templates: { type: 'integer', minimum: 0, description: 'templates the partition held' },
    },
    required: ['partition', 'deleted', 'subjects', 'templates'],
  },
  Stats: {
    type: 'object',
    properties: {
      total_subjects: { type: 'integer', minimum: 0 },
      partitions: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
    },
    required: ['total_subjects', 'partitions'],
  },
  JsonError: {
    type: 'object',
    properties: {
      status: { type: 'string', enum: [...ERROR_CODES] },
      message: { type: 'string' },
      quality_score: { type: 'number' },
      pad_score: { type: 'number' },
      mad_score: { type: 'number' },
      retry_after_seconds: { type: 'number' },
    },
    required: ['status', 'message'],
  },
} as const;
