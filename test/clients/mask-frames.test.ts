/**
 * `maskFrames: false`: the SDK masks its frames with an all-zero key. A TCP relay between the SDK
 * and a real broker records the bytes the client sends, and the test reads each WebSocket frame's
 * masking key off them (RFC 6455 §5.2).
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { connect, type ConnectOptions } from '../../clients/index.js';
import { startTestServer } from '../helpers/server.js';

const ZERO_KEY = Buffer.alloc(4);

/** A relay on a port of its own in front of `target`; `sent()` is everything clients wrote to it. */
async function recordingRelay(t: TestContext, target: URL): Promise<{ url: string; sent: () => Buffer }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const broker = createConnection(Number(target.port), target.hostname);
    sockets.add(client).add(broker);
    client.on('data', (chunk) => chunks.push(chunk));
    client.pipe(broker).pipe(client);
    client.on('error', () => broker.destroy());
    broker.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    relay.close();
  });
  const { port } = relay.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}${target.pathname}`, sent: () => Buffer.concat(chunks) };
}

/** The masking key of every complete frame after the HTTP upgrade request; null for an unmasked frame. */
function maskingKeys(stream: Buffer): Array<Buffer | null> {
  let at = stream.indexOf('\r\n\r\n') + 4;
  assert.ok(at >= 4, 'the client sent no upgrade request');
  const keys: Array<Buffer | null> = [];
  while (at + 2 <= stream.length) {
    const masked = (stream[at + 1]! & 0x80) !== 0;
    let length = stream[at + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (at + 4 > stream.length) break;
      length = stream.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (at + 10 > stream.length) break;
      length = Number(stream.readBigUInt64BE(at + 2));
      header = 10;
    }
    const keyLength = masked ? 4 : 0;
    if (at + header + keyLength + length > stream.length) break;
    keys.push(masked ? stream.subarray(at + header, at + header + 4) : null);
    at += header + keyLength + length;
  }
  return keys;
}

/** Publishes and consumes through the relay; returns the masking keys the client sent. */
async function roundTrip(t: TestContext, options: ConnectOptions): Promise<Array<Buffer | null>> {
  const server = await startTestServer(t);
  const relay = await recordingRelay(t, new URL(server.url));
  const conn = await connect(relay.url, { reconnect: false, ...options });
  t.after(() => conn.close());
  await conn.assertQueue('jobs');
  const bodies = Array.from({ length: 50 }, (_, i) => `job ${i} `.repeat(40)); // over 126 bytes: 16-bit lengths too
  await Promise.all(bodies.map((body) => conn.publish('jobs', body)));
  const received: string[] = [];
  await new Promise<void>((resolve, reject) => {
    conn
      .consume('jobs', async (msg) => {
        received.push(msg.text());
        await msg.ack();
        if (received.length === bodies.length) resolve();
      }, { prefetch: 10 })
      .catch(reject);
  });
  assert.deepEqual(received, bodies);
  return maskingKeys(relay.sent());
}

describe('maskFrames', () => {
  it('false: every frame the client sends carries the mask bit and an all-zero key, and messages arrive intact', async (t) => {
    const keys = await roundTrip(t, { maskFrames: false });
    assert.ok(keys.length >= 4, `read ${keys.length} frames`);
    for (const key of keys) assert.deepEqual(key, ZERO_KEY, 'a frame with a non-zero or no masking key');
  });

  it('by default every frame carries a random key', async (t) => {
    const keys = await roundTrip(t, {});
    assert.ok(keys.length >= 4, `read ${keys.length} frames`);
    for (const key of keys) assert.ok(key !== null, 'an unmasked client frame');
    // A random 32-bit key is all zeros once in 4 billion frames; here the keys also differ.
    assert.ok(keys.some((key) => !key!.equals(ZERO_KEY)));
    assert.ok(new Set(keys.map((key) => key!.toString('hex'))).size > keys.length / 2);
  });

  it('false opens with ws even where a global WebSocket exists (Node >= 22), which always masks at random', async (t) => {
    const server = await startTestServer(t);
    const globals = globalThis as { WebSocket?: unknown };
    const original = Object.getOwnPropertyDescriptor(globals, 'WebSocket');
    globals.WebSocket = class {
      constructor() {
        throw new Error('the global WebSocket was used');
      }
    };
    t.after(() => {
      if (original === undefined) delete globals.WebSocket;
      else Object.defineProperty(globals, 'WebSocket', original);
    });
    await assert.rejects(connect(server.url, { reconnect: false }), /the global WebSocket was used/);
    const conn = await connect(server.url, { reconnect: false, maskFrames: false });
    t.after(() => conn.close());
    await conn.assertQueue('jobs');
    await conn.publish('jobs', 'through ws');
  });

  it('refuses a non-boolean value and the combination with a WebSocket constructor, naming the option', async (t) => {
    const server = await startTestServer(t);
    await assert.rejects(connect(server.url, { maskFrames: 'no' as unknown as boolean }), {
      code: 'E_INVALID_ARGUMENT',
      message: /"maskFrames" must be a boolean, got "no"/,
    });
    const { WebSocket } = await import('ws');
    await assert.rejects(connect(server.url, { maskFrames: false, WebSocket: WebSocket as unknown as NonNullable<ConnectOptions['WebSocket']> }), {
      code: 'E_INVALID_ARGUMENT',
      message: /"maskFrames: false" .* cannot be combined with a "WebSocket" constructor/,
    });
  });
});
