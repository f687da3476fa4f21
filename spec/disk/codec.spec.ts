import { createCodec } from '../../lib/disk/codec';
import { DiskError } from '../../lib/disk/errors';

const PATH = '/var/lib/app/queue';

function roundTrip<T>(item: T): unknown {
  const codec = createCodec<T>(PATH);
  return codec.decode(Buffer.from(codec.encode(item)), 1);
}

describe('the disk codec', () => {
  test('JSON by default, with Buffers read back as Buffers (top level, nested, in arrays)', () => {
    const item = {
      name: 'a',
      body: Buffer.from([0, 1, 255]),
      list: [Buffer.from('x'), 2],
      nested: { b: Buffer.alloc(0) },
    };
    const back = roundTrip(item) as typeof item;
    expect(back).toEqual(item);
    expect(Buffer.isBuffer(back.body)).toBe(true);
    expect(Buffer.isBuffer(back.list[0])).toBe(true);
    expect(Buffer.isBuffer(roundTrip(Buffer.from('top')))).toBe(true);
    expect(roundTrip('text')).toBe('text');
    expect(roundTrip(null)).toBeNull();
  });

  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  test.each([
    ['a BigInt', { n: 1n }],
    ['a cycle', cycle],
    ['undefined', undefined],
    ['a function', () => 1],
  ])('refuses %s with ERR_DISK_UNSERIALIZABLE naming the path', (_name, item) => {
    const codec = createCodec<unknown>(PATH);
    expect(() => codec.encode(item)).toThrow(expect.objectContaining({ code: 'ERR_DISK_UNSERIALIZABLE', path: PATH }));
    expect(() => codec.encode(item)).toThrow(DiskError);
    expect(() => codec.encode(item)).toThrow(PATH);
  });

  test("uses the user's serialize/deserialize; a throwing or wrong-typed serialize is refused", () => {
    const codec = createCodec<number>(PATH, {
      serialize: (n) => String(n * 2),
      deserialize: (b) => Number(b.toString()) / 2,
    });
    expect(codec.decode(Buffer.from(codec.encode(21)), 1)).toBe(21);
    const throwing = createCodec<number>(PATH, {
      serialize: () => {
        throw new Error('no way');
      },
    });
    expect(() => throwing.encode(1)).toThrow(/serialize threw \(no way\)/);
    const wrong = createCodec<number>(PATH, { serialize: () => 42 as unknown as string });
    expect(() => wrong.encode(1)).toThrow(expect.objectContaining({ code: 'ERR_DISK_UNSERIALIZABLE' }));
  });

  test('a deserialize that throws gives ERR_DISK_UNDECODABLE naming the record id', () => {
    const codec = createCodec<unknown>(PATH);
    expect(() => codec.decode(Buffer.from('{not json'), 7)).toThrow(
      expect.objectContaining({ code: 'ERR_DISK_UNDECODABLE', message: expect.stringContaining('Record 7') }),
    );
  });
});
