import fc from 'fast-check';
import { crc32c } from '../../lib/disk/crc';

/** The textbook bit-at-a-time CRC-32C: the reference the table-driven one must agree with. */
function reference(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i] as number;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/** Check values of CRC-32C (RFC 3720, appendix B.4, and the common "123456789" check). */
describe('crc32c', () => {
  test.each([
    ['empty', Buffer.alloc(0), 0x00000000],
    ['"123456789"', Buffer.from('123456789'), 0xe3069283],
    ['32 zero bytes', Buffer.alloc(32, 0), 0x8a9136aa],
    ['32 bytes of 0xff', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['32 ascending bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['32 descending bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
  ])('%s', (_name, bytes, expected) => {
    expect(crc32c(bytes)).toBe(expected);
  });

  test('a checksum continued over two pieces equals the checksum of the whole', () => {
    const whole = Buffer.from('the quick brown fox jumps over the lazy dog');
    expect(crc32c(whole, 10, whole.length, crc32c(whole, 0, 10))).toBe(crc32c(whole));
  });

  test('slicing-by-8 agrees with the bitwise reference on any bytes, start and end (every alignment and tail)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (b % (bytes.length - start + 1));
        expect(crc32c(bytes, start, end)).toBe(reference(bytes, start, end));
      }),
      { numRuns: 500 },
    );
  });

  test('one flipped bit changes it', () => {
    const bytes = Buffer.from('123456789');
    bytes[4] = (bytes[4] as number) ^ 0x10;
    expect(crc32c(bytes)).not.toBe(0xe3069283);
  });
});
