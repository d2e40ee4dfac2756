/** Recording what an SDK connection puts on the wire: a `WebSocket` option that decodes every message each way. */
import assert from 'node:assert/strict';
import { WebSocket as NodeWebSocket } from 'ws';
import type { ConnectOptions } from '../../clients/index.js';
import { DEFAULT_DECODE_LIMITS, decodeFrames, type Frame } from '../../protocol/index.js';

/** Every WebSocket message the client sent and received, each as its decoded frames. */
export interface Wire {
  sent: Frame[][];
  received: Frame[][];
}

function decode(data: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  decodeFrames(data, DEFAULT_DECODE_LIMITS, (f) => frames.push(f), (e) => assert.fail(`undecodable frame: ${e.message}`));
  return frames;
}

/** A `WebSocket` option that records the wire of the connection it opens. */
export function recordingWebSocket(wire: Wire): NonNullable<ConnectOptions['WebSocket']> {
  class Recording extends NodeWebSocket {
    constructor(url: string) {
      super(url);
      this.addEventListener('message', (event) => wire.received.push(decode(new Uint8Array(event.data as ArrayBuffer))));
    }

    override send(data: Uint8Array, ...rest: unknown[]): void {
      wire.sent.push(decode(data));
      (super.send as (...args: unknown[]) => void)(data, ...rest);
    }
  }
  return Recording as unknown as NonNullable<ConnectOptions['WebSocket']>;
}
