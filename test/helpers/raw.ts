/** A raw WebSocket peer speaking frames by hand, for tests of what the SDK would never send. */
import type { TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { decodeFrames, DEFAULT_DECODE_LIMITS, encodeFrames, PROTOCOL_VERSION, type Frame, type FrameOf } from '../../protocol/index.js';

export interface RawPeer {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  send(...frames: Frame[]): void;
  /** Waits for the next frame matching `match` (already received ones count). */
  next<T extends Frame['type']>(type: T, timeoutMs?: number): Promise<Extract<Frame, { type: T }>>;
}

export async function rawPeer(url: string, { handshake = true } = {}): Promise<RawPeer> {
  const ws = new WebSocket(url);
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    decodeFrames(
      data,
      { ...DEFAULT_DECODE_LIMITS, maxBodyBytes: 64 * 1024 * 1024 },
      (f) => frames.push(f),
      (e) => {
        throw new Error(`broker sent an undecodable frame: ${e.message}`);
      },
    );
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of waiters.splice(0)) w();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const peer: RawPeer = {
    ws,
    frames,
    closed,
    send: (...f) => ws.send(encodeFrames(f)),
    async next(type, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = frames.findIndex((f) => f.type === type);
        if (i >= 0) return frames.splice(i, 1)[0] as never;
        if (Date.now() > deadline || ws.readyState === WebSocket.CLOSED) {
          throw new Error(`no ${type} frame within ${timeoutMs} ms; got ${frames.map((f) => f.type).join(', ') || 'nothing'}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, Math.max(1, deadline - Date.now()));
        });
      }
    },
  };
  if (handshake) {
    peer.send({ type: 'hello', version: PROTOCOL_VERSION });
    await peer.next('welcome');
  }
  return peer;
}

/** The op byte of every frame of one WebSocket message, walking the length prefixes. */
export function opsOf(message: Uint8Array): number[] {
  const data = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const ops: number[] = [];
  for (let at = 0; at + 9 <= data.length; at += 4 + data.readUInt32BE(at)) ops.push(data[at + 4]!);
  return ops;
}

/** A raw peer that says hello with `features` (none: no `features` field) and records the op of every frame it receives. */
export async function featurePeer(t: TestContext, url: string, features?: string[]): Promise<{ raw: RawPeer; ops: number[]; welcome: FrameOf<'welcome'> }> {
  const raw = await rawPeer(url, { handshake: false });
  t.after(() => raw.ws.terminate());
  const ops: number[] = [];
  raw.ws.on('message', (data: Buffer) => ops.push(...opsOf(data)));
  const hello: FrameOf<'hello'> = { type: 'hello', version: PROTOCOL_VERSION };
  if (features !== undefined) hello.features = features;
  raw.send(hello);
  return { raw, ops, welcome: await raw.next('welcome') };
}
