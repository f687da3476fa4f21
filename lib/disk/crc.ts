/**
 * CRC-32C (Castagnoli), the checksum of every disk-log record. Node 20 has no built-in CRC
 * (`zlib.crc32` arrived in Node 22), so this is the classic byte-at-a-time table version:
 * 256 precomputed remainders, one table lookup per byte. CRC-32C rather than zlib's CRC-32
 * because it detects more error patterns in short messages (it is what iSCSI, ext4 and
 * Kafka's record batches use).
 */

/** The reflected Castagnoli polynomial 0x1EDC6F41. */
const POLYNOMIAL = 0x82f63b78;

const TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC-32C of `bytes[start, end)`, as an unsigned 32-bit integer. Pass a previous result as
 * `seed` to continue a checksum over several pieces.
 *
 * @example
 * ```ts
 * crc32c(Buffer.from('123456789')); // 0xe3069283
 * ```
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, seed = 0): number {
  let crc = ~seed >>> 0;
  for (let i = start; i < end; i++) crc = (TABLE[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}
