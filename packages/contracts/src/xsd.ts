import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';
import {
  RESPONSE_STATUSES,
  XML_ERROR_SHAPE,
  XML_ROOTS,
  XML_SUCCESS_SHAPES,
  type XmlElementShape,
  type XmlValueType,
} from './response-shapes.js';

const XS = 'http://www.w3.org/2001/XMLSchema';

const SIMPLE_TYPES: Record<XmlValueType, string> = {
  string: 'xs:string',
  score: 'Score',
  boolean: 'xs:boolean',
  rank: 'xs:positiveInteger',
  pixels: 'xs:integer',
  status: 'Status',
};

function occurrence(shape: XmlElementShape): Record<string, string> {
  return {
    ...(shape.optional ? { minOccurs: '0' } : {}),
    ...(shape.repeated ? { maxOccurs: 'unbounded' } : {}),
  };
}

function addSequence(parent: XMLBuilder, shapes: readonly XmlElementShape[]): void {
  const sequence = parent.ele(XS, 'xs:sequence');
  for (const shape of shapes) addElement(sequence, shape);
}

function addElement(parent: XMLBuilder, shape: XmlElementShape): void {
  if (typeof shape.content === 'string') {
    parent.ele(XS, 'xs:element', { name: shape.name, type: SIMPLE_TYPES[shape.content], ...occurrence(shape) });
    return;
  }
  const element = parent.ele(XS, 'xs:element', { name: shape.name, ...occurrence(shape) });
  addSequence(element.ele(XS, 'xs:complexType'), shape.content);
}

/** The XSD of one XML response root: `status`, then the success or the error elements. */
export function responseXsd(root: string): string | undefined {
  const entry = XML_ROOTS.find((candidate) => candidate.root === root);
  if (!entry) return undefined;
  const schema = create({ version: '1.0', encoding: 'UTF-8' }).ele(XS, 'xs:schema', {
    elementFormDefault: 'qualified',
  });
  const score = schema.ele(XS, 'xs:simpleType', { name: 'Score' }).ele(XS, 'xs:restriction', { base: 'xs:decimal' });
  score.ele(XS, 'xs:minInclusive', { value: '0' });
  score.ele(XS, 'xs:maxInclusive', { value: '1' });
  const status = schema.ele(XS, 'xs:simpleType', { name: 'Status' }).ele(XS, 'xs:restriction', { base: 'xs:string' });
  for (const value of RESPONSE_STATUSES) status.ele(XS, 'xs:enumeration', { value });

  const sequence = schema.ele(XS, 'xs:element', { name: root }).ele(XS, 'xs:complexType').ele(XS, 'xs:sequence');
  addElement(sequence, { name: 'status', content: 'status', description: 'OK or an error code' });
  const choice = sequence.ele(XS, 'xs:choice');
  addSequence(choice, XML_SUCCESS_SHAPES[entry.endpoint]);
  addSequence(choice, XML_ERROR_SHAPE);
  return schema.end({ prettyPrint: true }) + '\n';
}
