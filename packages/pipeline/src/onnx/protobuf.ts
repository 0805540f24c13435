/**
 * A minimal protobuf reader for editing serialised ONNX models in place (subnormal.ts,
 * batch.ts): it walks the fields of a message without decoding it into objects, so an edit
 * that keeps every field's length needs no re-serialisation.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

export interface Field {
  number: number;
  wireType: number;
  /** Integer value of a varint field. */
  varint: number;
  /** Payload bounds of a length-delimited or fixed-width field. */
  start: number;
  end: number;
}

export class ProtobufFormatError extends Error {}

export function readVarint(bytes: Uint8Array, offset: number): { value: number; next: number } {
  let value = 0;
  let multiplier = 1;
  for (let position = offset; position < bytes.length && position < offset + 10; position++) {
    const byte = bytes[position]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { value, next: position + 1 };
    multiplier *= 128;
  }
  throw new ProtobufFormatError(`truncated varint at byte ${offset}`);
}

/** The varint bytes of a non-negative integer (readVarint's inverse). */
export function encodeVarint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return bytes;
}

/** A varint field: its tag and its value. */
export function varintField(number: number, value: number): number[] {
  return [...encodeVarint(number * 8 + WIRE_VARINT), ...encodeVarint(value)];
}

/** A length-delimited field: its tag, its payload's length, and the payload. */
export function lengthDelimitedField(number: number, payload: ArrayLike<number>): number[] {
  return [...encodeVarint(number * 8 + WIRE_LENGTH_DELIMITED), ...encodeVarint(payload.length), ...Array.from(payload)];
}

/**
 * A length-delimited field as bytes, its payload given in parts. For payloads of weights: through
 * number arrays ({@link lengthDelimitedField}) the padded weights of one model took a second to encode.
 */
export function lengthDelimitedBytes(number: number, parts: readonly ArrayLike<number>[]): Uint8Array {
  const payload = parts.map(asBytes);
  const length = payload.reduce((sum, part) => sum + part.length, 0);
  const header = [...encodeVarint(number * 8 + WIRE_LENGTH_DELIMITED), ...encodeVarint(length)];
  return concatenate([Uint8Array.from(header), ...payload]);
}

/** `part` as bytes: itself where it already is a Uint8Array. */
export function asBytes(part: ArrayLike<number>): Uint8Array {
  return part instanceof Uint8Array ? part : Uint8Array.from(part);
}

/** Byte range of a length-delimited field including its tag and length, from its payload's range. */
export function withTag(number: number, start: number, end: number): [number, number] {
  return [start - encodeVarint(end - start).length - encodeVarint(number * 8 + WIRE_LENGTH_DELIMITED).length, end];
}

export function concatenate(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * `message` with the payload of its length-delimited field `number` at `start`–`end` replaced by
 * `payload`'s parts (the field's length re-encoded; every other byte copied).
 */
export function replacePayload(
  message: Uint8Array,
  number: number,
  start: number,
  end: number,
  payload: readonly Uint8Array[],
): Uint8Array {
  const length = payload.reduce((sum, part) => sum + part.length, 0);
  const [tagStart] = withTag(number, start, end);
  return concatenate([
    message.subarray(0, tagStart),
    new Uint8Array([...encodeVarint(number * 8 + WIRE_LENGTH_DELIMITED), ...encodeVarint(length)]),
    ...payload,
    message.subarray(end),
  ]);
}

export function* fields(bytes: Uint8Array, start: number, end: number): Generator<Field> {
  let offset = start;
  while (offset < end) {
    const tag = readVarint(bytes, offset);
    offset = tag.next;
    const number = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    switch (wireType) {
      case WIRE_VARINT: {
        const value = readVarint(bytes, offset);
        yield { number, wireType, varint: value.value, start: offset, end: value.next };
        offset = value.next;
        break;
      }
      case WIRE_FIXED64:
        yield { number, wireType, varint: 0, start: offset, end: offset + 8 };
        offset += 8;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const length = readVarint(bytes, offset);
        const payloadEnd = length.next + length.value;
        if (payloadEnd > end) throw new ProtobufFormatError(`field ${number} overruns its message`);
        yield { number, wireType, varint: 0, start: length.next, end: payloadEnd };
        offset = payloadEnd;
        break;
      }
      case WIRE_FIXED32:
        yield { number, wireType, varint: 0, start: offset, end: offset + 4 };
        offset += 4;
        break;
      default:
        throw new ProtobufFormatError(`unsupported wire type ${wireType} at byte ${offset}`);
    }
    if (offset > end) throw new ProtobufFormatError('message overruns its bounds');
  }
}
