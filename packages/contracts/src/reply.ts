import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';
import { XML_ROOT } from './responses.js';

/**
 * Reading the service's XML replies, for its clients (the CLI, the evaluation tool's HTTP mode):
 * through xmlbuilder2's DOM, whose text is entity-decoded, so subject ids with XML-special
 * characters come back exactly (its object conversion leaves `&amp;` escaped).
 */
export interface BiometricReply {
  root: string;
  status: string;
  /** Text of a direct child of the root element. */
  field(name: string): string | undefined;
  /** `<candidates>` of a search reply, in the order given. */
  candidates(): Array<{ subjectId: string; score: number }>;
  /** The root's children as plain values: text for leaves, objects for elements, every `<candidate>` in a list. */
  body(): Record<string, unknown>;
}

const ROOTS = new Set<string>(Object.values(XML_ROOT));
/** Elements that are a list even when one is present. */
const LIST_ELEMENTS = new Set(['candidate']);

function childElements(element: XMLBuilder, name?: string): XMLBuilder[] {
  return element.filter(
    (child) => child.node.nodeType === 1 && (name === undefined || child.node.nodeName === name),
    false,
    false,
  );
}

function textOf(element: XMLBuilder | undefined): string | undefined {
  return element?.node.textContent ?? undefined;
}

function plainValue(element: XMLBuilder): unknown {
  const children = childElements(element);
  if (children.length === 0) return textOf(element) ?? '';
  const value: Record<string, unknown> = {};
  for (const child of children) {
    const name = child.node.nodeName;
    if (LIST_ELEMENTS.has(name)) ((value[name] ??= []) as unknown[]).push(plainValue(child));
    else value[name] = plainValue(child);
  }
  return value;
}

/** Parses a reply; throws on what is not XML or not a biometric reply (another root, no status). */
export function parseBiometricReply(xml: string): BiometricReply {
  const root = create(xml).root();
  const field = (name: string): string | undefined => textOf(childElements(root, name)[0]);
  if (!ROOTS.has(root.node.nodeName) || !field('status')) {
    throw new Error(`not a biometric reply: <${root.node.nodeName}> without status`);
  }
  return {
    root: root.node.nodeName,
    status: field('status') ?? '',
    field,
    candidates: () =>
      childElements(root, 'candidates').flatMap((list) =>
        childElements(list, 'candidate').map((candidate) => ({
          subjectId: textOf(childElements(candidate, 'subject_id')[0]) ?? '',
          score: Number(textOf(childElements(candidate, 'score')[0])),
        })),
      ),
    body: () => {
      const value = plainValue(root);
      return typeof value === 'object' ? (value as Record<string, unknown>) : {};
    },
  };
}
