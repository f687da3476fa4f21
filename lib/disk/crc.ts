/**
 * CRC-32C (Castagnoli), the checksum of every disk-log record. Node 20 has no built-in CRC
 * (`zlib.crc32` arrived in Node 22), so this is table-driven, "slicing-by-8": eight tables of 256
 * precomputed remainders let the loop take eight bytes per step (about three times the speed of
 * the byte-at-a-time version, which finishes the last bytes). CRC-32C rather than zlib's CRC-32
 * because it detects more error patterns in short messages (it is what iSCSI, ext4 and
 * Kafka's record batches use).
 */

/** The reflected Castagnoli polynomial 0x1EDC6F41. */
const POLYNOMIAL = 0x82f63b78;

/** Eight tables of 256 in one array: `[k * 256 + n]` is the remainder of byte n followed by k zero bytes. */
const TABLES = ((): Uint32Array => {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const previous = tables[(k - 1) * 256 + n] as number;
      tables[k * 256 + n] = ((previous >>> 8) ^ (tables[previous & 0xff] as number)) >>> 0;
    }
  }
  return tables;
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
  const t = TABLES;
  let crc = ~seed >>> 0;
  let i = start;
  for (const last8 = end - 8; i <= last8; i += 8) {
    const low =
      (crc ^
        (bytes[i] as number) ^
        ((bytes[i + 1] as number) << 8) ^
        ((bytes[i + 2] as number) << 16) ^
        ((bytes[i + 3] as number) << 24)) >>>
      0;
    crc =
      (t[1792 + (low & 0xff)] as number) ^
      (t[1536 + ((low >>> 8) & 0xff)] as number) ^
      (t[1280 + ((low >>> 16) & 0xff)] as number) ^
      (t[1024 + (low >>> 24)] as number) ^
      (t[768 + (bytes[i + 4] as number)] as number) ^
      (t[512 + (bytes[i + 5] as number)] as number) ^
      (t[256 + (bytes[i + 6] as number)] as number) ^
      (t[bytes[i + 7] as number] as number);
  }
  for (; i < end; i++) crc = (t[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}
