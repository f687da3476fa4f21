/**
 * Option checks and payload codecs shared by the broker edges. Messages follow the
 * rest of sluice: name the option, echo the value, never clamp.
 */
import { invalidArgType, outOfRange } from '../errors';

/** Bytes as a broker hands them over. */
export type Bytes = Buffer | Uint8Array;

/** An object of options, or `{}` when none were given. */
export function optionsObject<O extends object>(what: string, options: O | undefined): O {
  if (options === undefined) return {} as O;
  if (options === null || typeof options !== 'object')
    throw invalidArgType(`The "${what}" argument`, 'an object', options);
  return options;
}

/** A non-empty string option. */
export function stringOption(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(`The option "${name}"`, 'a string', value);
  if (value === '') throw outOfRange(`The option "${name}"`, 'a non-empty string', value);
  return value;
}

/** An integer option within [min, max], or `fallback` when left out. */
export function integerOption(name: string, value: unknown, fallback: number, min: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(`The option "${name}"`, 'of type number', value);
  const range = max === Infinity ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  if (!Number.isInteger(value) || !(value >= min) || !(value <= max))
    throw outOfRange(`The option "${name}"`, range, value);
  return value;
}

/** A function option, or `fallback` when left out. */
export function functionOption<F extends (...args: never[]) => unknown>(name: string, value: unknown, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw invalidArgType(`The option "${name}"`, 'a function', value);
  return value as F;
}

/** A string option, or a function of the item returning one (routing per item). */
export function routeOption<T>(name: string, value: unknown): (item: T) => string {
  if (typeof value === 'function') return value as (item: T) => string;
  const fixed = stringOption(name, value);
  return () => fixed;
}

/**
 * The default payload encoding of every sink: bytes as they are, anything else (strings
 * too) as JSON text, so that the sources' default decoding gives back the same value.
 */
export function encodeJson(item: unknown): Buffer {
  if (Buffer.isBuffer(item)) return item;
  if (item instanceof Uint8Array) return Buffer.from(item.buffer, item.byteOffset, item.byteLength);
  const text = JSON.stringify(item);
  if (text === undefined) throw invalidArgType('An item', 'JSON-serializable (or give an "encode" option)', item);
  return Buffer.from(text);
}

/** The default payload decoding of every source: JSON text. */
export function decodeJson(bytes: Bytes): unknown {
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

/** Bytes as a Buffer, without a copy. */
export function asBuffer(bytes: Bytes): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
