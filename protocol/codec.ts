/**
 * Binary framing of the Berth protocol [PROTO §2]. Pure: bytes in, frames out.
 *
 * One WebSocket binary message holds one or more frames, back to back:
 *
 *   u32 frameLength   bytes that follow this field (big-endian)
 *   u8  op            frame type, see `Op`
 *   u32 headerLength  bytes of the JSON header (big-endian)
 *   ... header        UTF-8 JSON object with the frame's fields, or for the compact ops of
 *                     publish and deliver the same fields in binary (compact.ts)
 *   ... body          the rest of the frame: raw bytes (publish, deliver, result.put, result)
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ErrorCodes, type ErrorCode } from './errors.js';
import {
  CompactOp,
  compactDeliverBound,
  compactPublishBound,
  readCompactDeliver,
  readCompactPublish,
  writeCompactDeliver,
  writeCompactPublish,
  type CompactDeliverFields,
} from './compact.js';
import { BODY_FRAME_TYPES, HeaderSchemas, Op, frameTypeOf, type Frame, type FrameOf, type FrameType } from './frames.js';

/** Bytes of the fixed part of every frame: frameLength + op + headerLength. */
export const FRAME_OVERHEAD_BYTES = 9;

/** Size limits the decoder enforces; every one has a finite default. */
export interface DecodeLimits {
  /** Largest JSON header of one frame. */
  maxHeaderBytes: number;
  /** Largest body of one publish/deliver/result.put/result frame. */
  maxBodyBytes: number;
}

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxHeaderBytes: 64 * 1024,
  maxBodyBytes: 1024 * 1024,
});

/** Why one frame (or a whole message) could not be decoded. */
export interface DecodeError {
  code: ErrorCode;
  message: string;
  /** The frame type, when the op byte was readable and known. */
  type?: FrameType;
  /** `ref` or `seq` of the frame when its header could be read, so a reply can name it. */
  ref?: number;
  seq?: number;
}

const checkers = new Map<FrameType, TypeCheck<(typeof HeaderSchemas)[FrameType]>>();
function checkerFor(type: FrameType): TypeCheck<(typeof HeaderSchemas)[FrameType]> {
  let check = checkers.get(type);
  if (check === undefined) {
    check = TypeCompiler.Compile(HeaderSchemas[type]);
    checkers.set(type, check);
  }
  return check;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

function readU32(data: Uint8Array, at: number): number {
  return ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
}

function writeU32(data: Uint8Array, at: number, value: number): void {
  data[at] = value >>> 24;
  data[at + 1] = (value >>> 16) & 0xff;
  data[at + 2] = (value >>> 8) & 0xff;
  data[at + 3] = value & 0xff;
}

function error(code: ErrorCode, detail: string, extra?: Partial<DecodeError>): DecodeError {
  return { code, message: `${ErrorCodes[code].message}: ${detail}`, ...extra };
}

/** Pulls `ref` / `seq` out of a parsed header so an error reply can name the frame. */
function correlation(header: unknown): Pick<DecodeError, 'ref' | 'seq'> {
  if (typeof header !== 'object' || header === null) return {};
  const out: Pick<DecodeError, 'ref' | 'seq'> = {};
  const { ref, seq } = header as { ref?: unknown; seq?: unknown };
  if (Number.isSafeInteger(ref) && (ref as number) >= 0) out.ref = ref as number;
  if (Number.isSafeInteger(seq) && (seq as number) >= 1) out.seq = seq as number;
  return out;
}

/**
 * Decodes every frame in one WebSocket message, in order. Calls `onFrame` for
 * each valid frame and `onError` for each invalid one; a frame that is invalid
 * does not stop the frames after it, but a broken length prefix ends the
 * message (nothing after it can be located).
 *
 * Bodies are views into `data`, not copies.
 */
export function decodeFrames(
  data: Uint8Array,
  limits: Readonly<DecodeLimits>,
  onFrame: (frame: Frame) => void,
  onError: (error: DecodeError) => void,
): void {
  let at = 0;
  // Made once a compact header needs it: most messages of a JSON session never do.
  let view: DataView | undefined;
  if (data.length === 0) {
    onError(error('E_FRAME_MALFORMED', 'empty message'));
    return;
  }
  while (at < data.length) {
    if (data.length - at < FRAME_OVERHEAD_BYTES) {
      onError(error('E_FRAME_MALFORMED', `truncated frame header at byte ${at}`));
      return;
    }
    const frameLength = readU32(data, at);
    const end = at + 4 + frameLength;
    if (frameLength < 5 || end > data.length) {
      onError(error('E_FRAME_MALFORMED', `frame length ${frameLength} at byte ${at} does not fit the message`));
      return;
    }
    const op = data[at + 4]!;
    const headerLength = readU32(data, at + 5);
    const headerStart = at + FRAME_OVERHEAD_BYTES;
    const headerEnd = headerStart + headerLength;
    at = end;
    if (headerEnd > end) {
      onError(error('E_FRAME_MALFORMED', `header length ${headerLength} exceeds frame length ${frameLength}`));
      continue;
    }
    const compactType = op === CompactOp.publish ? 'publish' : op === CompactOp.deliver ? 'deliver' : undefined;
    const type = compactType ?? frameTypeOf(op);
    if (type === undefined) {
      onError(error('E_FRAME_UNKNOWN_TYPE', `op ${op}`));
      continue;
    }
    if (headerLength > limits.maxHeaderBytes) {
      onError(error('E_FRAME_TOO_LARGE', `${type} header is ${headerLength} bytes, limit ${limits.maxHeaderBytes}`, { type }));
      continue;
    }
    let header: Record<string, unknown>;
    if (compactType !== undefined) {
      view ??= new DataView(data.buffer, data.byteOffset, data.byteLength);
      const read = compactType === 'publish' ? readCompactPublish(data, view, headerStart, headerEnd) : readCompactDeliver(data, view, headerStart, headerEnd);
      if (read.error !== undefined) {
        const { code, detail, seq } = read.error;
        onError(error(code, `${type} (compact header): ${detail}`, seq === undefined ? { type } : { type, seq }));
        continue;
      }
      header = read.frame;
    } else {
      let parsed: unknown;
      try {
        parsed = headerLength === 0 ? {} : JSON.parse(textDecoder.decode(data.subarray(headerStart, headerEnd)));
      } catch (cause) {
        onError(error('E_FRAME_MALFORMED', `${type} header is not valid UTF-8 JSON (${(cause as Error).message})`, { type }));
        continue;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        onError(error('E_FRAME_INVALID', `${type} header must be a JSON object`, { type }));
        continue;
      }
      const check = checkerFor(type);
      if (!check.Check(parsed)) {
        const first = check.Errors(parsed).First();
        const detail = first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`;
        onError(error('E_FRAME_INVALID', `${type}: ${detail}`, { type, ...correlation(parsed) }));
        continue;
      }
      header = parsed as Record<string, unknown>;
    }
    const bodyLength = end - headerEnd;
    const frame = header;
    frame.type = type;
    if (BODY_FRAME_TYPES.has(type)) {
      if (bodyLength > limits.maxBodyBytes) {
        onError(
          error('E_MESSAGE_TOO_LARGE', `${type} body is ${bodyLength} bytes, limit ${limits.maxBodyBytes}`, {
            type,
            ...correlation(header),
          }),
        );
        continue;
      }
      frame.body = data.subarray(headerEnd, end);
    } else if (bodyLength !== 0) {
      onError(error('E_FRAME_MALFORMED', `${type} frame must not carry a body`, { type, ...correlation(header) }));
      continue;
    }
    onFrame(frame as Frame);
  }
}

/**
 * Accumulates frames into one WebSocket message. `push` encodes at once, so
 * frames may be reused by the caller after the call.
 */
export class FrameWriter {
  #buf: Uint8Array;
  /** Over `#buf`, made when a compact header is first written to it. */
  #view: DataView | undefined;
  #length = 0;

  // Small at first: idle connections are many (w8), and a busy one grows this once and keeps it.
  constructor(initialBytes = 512) {
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /** Frames written since the last `take`. */
  count = 0;

  push(frame: Frame): void {
    const { type, body, ...fields } = frame as Frame & { body?: Uint8Array };
    this.pushParts(type, fields, body);
  }

  /**
   * Writes one frame from its parts: `header` holds the JSON fields only (no
   * `type`, no `body`). The hot paths (publish, deliver) use this to skip
   * building a whole frame object.
   */
  pushParts(type: FrameType, header: object, body?: Uint8Array): void {
    this.pushJson(type, JSON.stringify(header), body);
  }

  /** Writes one frame whose header is already JSON text (an object without `type` and `body`). */
  pushJson(type: FrameType, json: string, body?: Uint8Array): void {
    const bodyLength = body?.length ?? 0;
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    this.#reserve(FRAME_OVERHEAD_BYTES + json.length * 3 + bodyLength);
    const start = this.#length;
    const { written } = textEncoder.encodeInto(json, this.#buf.subarray(start + FRAME_OVERHEAD_BYTES));
    this.#finishFrame(start, Op[type], written, body);
  }

  /**
   * Writes a publish frame with a compact header [PROTO §2.5]; false (nothing written) when the
   * frame cannot be written so, and must go as JSON. `headersJson`: its headers as JSON, or null.
   */
  pushCompactPublish(frame: FrameOf<'publish'>, headersJson: string | null): boolean {
    const body = frame.body;
    this.#reserve(FRAME_OVERHEAD_BYTES + compactPublishBound(frame, headersJson) + body.length);
    const start = this.#length;
    const headerStart = start + FRAME_OVERHEAD_BYTES;
    const headerEnd = writeCompactPublish(this.#buf, this.#dataView(), headerStart, frame, headersJson);
    if (headerEnd < 0) return false;
    this.#finishFrame(start, CompactOp.publish, headerEnd - headerStart, body);
    return true;
  }

  /**
   * Writes a deliver frame with a compact header [PROTO §2.5] and `body`; false (nothing written)
   * when the message id cannot be written so, and the frame must go as JSON.
   */
  pushCompactDeliver(fields: CompactDeliverFields, body: Uint8Array): boolean {
    this.#reserve(FRAME_OVERHEAD_BYTES + compactDeliverBound(fields) + body.length);
    const start = this.#length;
    const headerStart = start + FRAME_OVERHEAD_BYTES;
    const headerEnd = writeCompactDeliver(this.#buf, this.#dataView(), headerStart, fields);
    if (headerEnd < 0) return false;
    this.#finishFrame(start, CompactOp.deliver, headerEnd - headerStart, body);
    return true;
  }

  /** Writes the body after a header of `headerLength` bytes, then the frame's length, op and header length. */
  #finishFrame(start: number, op: number, headerLength: number, body: Uint8Array | undefined): void {
    const headerEnd = start + FRAME_OVERHEAD_BYTES + headerLength;
    if (body !== undefined) this.#buf.set(body, headerEnd);
    const end = headerEnd + (body?.length ?? 0);
    writeU32(this.#buf, start, end - start - 4);
    this.#buf[start + 4] = op;
    writeU32(this.#buf, start + 5, headerLength);
    this.#length = end;
    this.count++;
  }

  #dataView(): DataView {
    return (this.#view ??= new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength));
  }

  /** Returns the bytes written so far (a copy) and resets the writer. */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#length);
    this.#length = 0;
    this.count = 0;
    return out;
  }

  #reserve(extra: number): void {
    const need = this.#length + extra;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#length));
    this.#buf = next;
    this.#view = undefined;
  }
}

/** Encodes frames into one WebSocket message. */
export function encodeFrames(frames: readonly Frame[]): Uint8Array {
  const writer = new FrameWriter();
  for (const frame of frames) writer.push(frame);
  return writer.take();
}
