// Streaming frame parser for the MCU link: feed it whatever the serial port
// delivers (any chunking: half a frame, three frames and a half, garbage) and
// it calls back once per valid frame. It resynchronises on every 0x00, so a
// corrupt or truncated frame costs only itself; every dropped frame is
// counted by kind (cobs, short, crc, oversize, version, type). It never
// throws on input and keeps at most MAX_ENCODED bytes buffered.
import { crc32c } from '../protocol/crc32c.js';
import { cobsDecodeInto } from './cobs.js';
import { CRC_BYTES, FRAME_VERSION, HEADER_BYTES, isKnownType, MAX_BODY, MAX_ENCODED, MIN_BODY, type Frame } from './frame.js';

export type BadFrameKind = 'cobs' | 'short' | 'crc' | 'oversize' | 'version' | 'type';
export const BAD_FRAME_KINDS: readonly BadFrameKind[] = ['cobs', 'short', 'crc', 'oversize', 'version', 'type'];

export interface BadFrame {
  kind: BadFrameKind;
  /** Encoded length seen (oversize: at least this many bytes). */
  bytes: number;
  /** The frame version byte, for kind 'version'. */
  version?: number;
  /** The type byte, for kind 'type'. */
  type?: number;
}

export interface ParserStats {
  frames: number;
  bytes: number;
  /** Empty blocks (0x00 0x00): idle fill, not errors. */
  empty: number;
  bad: Record<BadFrameKind, number>;
}

export interface FrameParserOptions {
  onFrame: (f: Frame) => void;
  onBad?: (b: BadFrame) => void;
}

export class FrameParser {
  readonly stats: ParserStats = { frames: 0, bytes: 0, empty: 0, bad: { cobs: 0, short: 0, crc: 0, oversize: 0, version: 0, type: 0 } };
  private readonly onFrame: (f: Frame) => void;
  private readonly onBad: ((b: BadFrame) => void) | undefined;
  /** Bytes of a frame split over chunks. */
  private readonly partial = new Uint8Array(MAX_ENCODED);
  private partialLen = 0;
  /** Skipping an oversize block until the next 0x00; counts its length. */
  private skipping = 0;
  private readonly body = new Uint8Array(MAX_BODY);

  constructor(opts: FrameParserOptions) {
    this.onFrame = opts.onFrame;
    this.onBad = opts.onBad;
  }

  /** Total dropped frames of every kind. */
  get badTotal(): number {
    const b = this.stats.bad;
    return b.cobs + b.short + b.crc + b.oversize + b.version + b.type;
  }

  /** Feeds a chunk; calls onFrame/onBad synchronously. */
  push(chunk: Uint8Array): void {
    this.stats.bytes += chunk.length;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      const z = chunk.indexOf(0, i);
      const end = z < 0 ? n : z;
      if (this.skipping > 0) {
        this.skipping += end - i;
      } else if (this.partialLen > 0) {
        const add = end - i;
        if (this.partialLen + add > MAX_ENCODED) {
          this.skipping = this.partialLen + add;
          this.partialLen = 0;
        } else {
          this.partial.set(chunk.subarray(i, end), this.partialLen);
          this.partialLen += add;
        }
      } else if (z >= 0) {
        // The whole block is in this chunk: decode in place.
        if (end - i > MAX_ENCODED) this.bad({ kind: 'oversize', bytes: end - i });
        else this.block(chunk, i, end);
        i = end + 1;
        continue;
      } else if (end - i > MAX_ENCODED) {
        this.skipping = end - i;
      } else {
        this.partial.set(chunk.subarray(i, end), 0);
        this.partialLen = end - i;
      }
      if (z < 0) return;
      // A delimiter ends the buffered block.
      if (this.skipping > 0) {
        this.bad({ kind: 'oversize', bytes: this.skipping });
        this.skipping = 0;
      } else if (this.partialLen > 0) {
        const len = this.partialLen;
        this.partialLen = 0;
        this.block(this.partial, 0, len);
      } else this.stats.empty++;
      i = z + 1;
    }
  }

  /** Drops any partial frame (after a reconnect: the next bytes start afresh). */
  reset(): void {
    this.partialLen = 0;
    this.skipping = 0;
  }

  private bad(b: BadFrame): void {
    this.stats.bad[b.kind]++;
    this.onBad?.(b);
  }

  private block(src: Uint8Array, start: number, end: number): void {
    const encLen = end - start;
    if (encLen === 0) {
      this.stats.empty++;
      return;
    }
    const body = this.body;
    const len = cobsDecodeInto(src, start, end, body);
    if (len === -2) return this.bad({ kind: 'oversize', bytes: encLen });
    if (len < 0) return this.bad({ kind: 'cobs', bytes: encLen });
    if (len < MIN_BODY) return this.bad({ kind: 'short', bytes: encLen });
    const crcAt = len - CRC_BYTES;
    const want = ((body[crcAt] << 24) | (body[crcAt + 1] << 16) | (body[crcAt + 2] << 8) | body[crcAt + 3]) >>> 0;
    if (crc32c(body, 0, 0, crcAt) !== want) return this.bad({ kind: 'crc', bytes: encLen });
    if (body[0] !== FRAME_VERSION) return this.bad({ kind: 'version', bytes: encLen, version: body[0] });
    const type = body[1];
    if (!isKnownType(type)) return this.bad({ kind: 'type', bytes: encLen, type });
    const seq = ((body[2] << 24) | (body[3] << 16) | (body[4] << 8) | body[5]) >>> 0;
    this.stats.frames++;
    this.onFrame({ ver: body[0], type, seq, payload: body.slice(HEADER_BYTES, crcAt) });
  }
}
