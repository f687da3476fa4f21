/**
 * Items to bytes and back. The default is JSON with Buffers preserved: a Buffer anywhere in an
 * item is stored as `{ "__sluice_buffer__": "<base64>" }` and read back as a Buffer (an object of
 * exactly that shape in your own data would be read back as a Buffer too). JSON's own rules
 * apply otherwise: `undefined` properties vanish, `NaN` becomes `null`, a `Date` a string.
 *
 * An item that cannot be encoded (a BigInt, a cycle, a top-level `undefined` or function, a
 * `serialize` that throws or returns something other than bytes or a string) is refused with
 * `ERR_DISK_UNSERIALIZABLE` before anything is written: encoding happens before the append.
 */
import { DiskError } from './errors';

/** A user's own encoding. `serialize` may return a string (stored as UTF-8) or bytes. */
export interface DiskCodecOptions<T> {
  serialize?: (item: T) => Uint8Array | string;
  deserialize?: (bytes: Buffer) => T;
}

/** Encodes and decodes the items of one log. */
export interface DiskCodec<T> {
  /** The item's bytes; throws `ERR_DISK_UNSERIALIZABLE`. */
  encode(item: T): Uint8Array;
  /** The item stored as `bytes` (record `id`); throws `ERR_DISK_UNDECODABLE`. */
  decode(bytes: Buffer, id: number): T;
}

const BUFFER_TAG = '__sluice_buffer__';

/**
 * The codec for a log at `path` (named in its errors): the user's functions, or JSON.
 *
 * @example
 * ```ts
 * const codec = createCodec<{ body: Buffer }>('/var/lib/app/queue');
 * codec.decode(Buffer.from(codec.encode({ body: Buffer.from([1, 2]) })), 1).body; // <Buffer 01 02>
 * ```
 */
export function createCodec<T>(path: string, options: DiskCodecOptions<T> = {}): DiskCodec<T> {
  const serialize = options.serialize ?? jsonSerialize;
  const deserialize = options.deserialize ?? (jsonDeserialize as (bytes: Buffer) => T);
  return {
    encode(item) {
      let encoded: unknown;
      try {
        encoded = serialize(item);
      } catch (error) {
        const what = options.serialize === undefined ? 'JSON.stringify' : 'serialize';
        throw DiskError.unserializable(
          path,
          `${what} threw (${error instanceof Error ? error.message : String(error)})`,
          error,
        );
      }
      if (typeof encoded === 'string') return Buffer.from(encoded, 'utf8');
      if (encoded instanceof Uint8Array) return encoded;
      throw DiskError.unserializable(path, `serialize must return a Uint8Array or a string, not ${describe(encoded)}`);
    },
    decode(bytes, id) {
      try {
        return deserialize(bytes);
      } catch (error) {
        throw DiskError.undecodable(path, id, error);
      }
    },
  };
}

/**
 * A replacer (or reviver) function makes JSON several times slower, and most items hold no Buffer.
 * So the plain call goes first: a Buffer in the item shows in its text as Node's own `toJSON()`
 * output (`"type":"Buffer","data":[`), and only then is the item encoded again with the replacer.
 * (User data that merely contains that text costs the second encoding, nothing else.) Decoding
 * revives only text that holds the tag.
 */
function jsonSerialize(item: unknown): string {
  let text = JSON.stringify(item) as string | undefined;
  if (text === undefined) throw new TypeError(`JSON cannot represent ${describe(item)}`);
  if (text.includes(NODE_BUFFER_JSON)) text = JSON.stringify(item, replaceBuffers);
  return text;
}

function jsonDeserialize(bytes: Buffer): unknown {
  const text = bytes.toString('utf8');
  return text.includes(BUFFER_TAG) ? JSON.parse(text, reviveBuffers) : JSON.parse(text);
}

/** What `JSON.stringify` makes of a Buffer (`Buffer.prototype.toJSON`). */
const NODE_BUFFER_JSON = '"type":"Buffer","data":[';

/** `this[key]` is the value before `toJSON()`: a Buffer is still a Buffer there. */
function replaceBuffers(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const original = this[key];
  return Buffer.isBuffer(original) ? { [BUFFER_TAG]: original.toString('base64') } : value;
}

function reviveBuffers(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  const tagged = (value as Record<string, unknown>)[BUFFER_TAG];
  return keys.length === 1 && typeof tagged === 'string' ? Buffer.from(tagged, 'base64') : value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  return `a value of type ${typeof value}`;
}
