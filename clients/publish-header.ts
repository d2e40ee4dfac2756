/**
 * A publish frame's JSON header, written by hand.
 *
 * `JSON.stringify` over a copy of the frame without `type` and `body` was, after garbage
 * collection, the largest cost of a publishing process (15.6% of its busy time in a cpuprofile of
 * w1's client: 1000 in flight, 256-byte bodies; GC 16.4%). A template over the fields takes a third
 * of the time alone (with encodeInto, 0.17–0.33 against 0.6–1.0 µs a header) and 9.3% of the busy
 * time in the same profile; client CPU per publish 5.31 → 5.11 µs at the median of 8 alternating
 * pairs.
 * The header is written when the frame is sent, not kept with the pending publish: kept until the
 * confirm, the pieces of the string outlived the young generation's collections and cost more than
 * they saved (5.28 → 5.78 µs).
 */
import { jsonString, type FrameOf } from '../protocol/index.js';

/**
 * The header of `frame` as JSON, without `type` and `body`: what `JSON.stringify` of its other
 * fields says. Values other than the queue and the message id go through `JSON.stringify`.
 */
export function publishHeader(frame: FrameOf<'publish'>): string {
  let json = `{"seq":${frame.seq},"queue":${jsonString(frame.queue)}`;
  if (frame.messageId !== undefined) json += `,"messageId":${jsonString(frame.messageId)}`;
  if (frame.headers !== undefined) json += `,"headers":${JSON.stringify(frame.headers)}`;
  if (frame.priority !== undefined) json += `,"priority":${JSON.stringify(frame.priority)}`;
  if (frame.delayMs !== undefined) json += `,"delayMs":${JSON.stringify(frame.delayMs)}`;
  if (frame.notBefore !== undefined) json += `,"notBefore":${JSON.stringify(frame.notBefore)}`;
  if (frame.ttlMs !== undefined) json += `,"ttlMs":${JSON.stringify(frame.ttlMs)}`;
  if (frame.resultTtlMs !== undefined) json += `,"resultTtlMs":${JSON.stringify(frame.resultTtlMs)}`;
  return `${json}}`;
}

// A field added to the publish frame must be written above: this stops the build until it is.
type WrittenField = 'type' | 'seq' | 'queue' | 'body' | 'messageId' | 'headers' | 'priority' | 'delayMs' | 'notBefore' | 'ttlMs' | 'resultTtlMs';
const everyFieldWritten: Exclude<keyof FrameOf<'publish'>, WrittenField> extends never ? true : never = true;
void everyFieldWritten;
