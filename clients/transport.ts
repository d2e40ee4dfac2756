/**
 * The socket behind a connection. A standard `WebSocket` (browsers, Deno,
 * Node ≥ 22) is used when one exists; otherwise the `ws` package is loaded.
 */

export interface TransportHandlers {
  onMessage(data: Uint8Array): void;
  onClose(code: number, reason: string): void;
}

export interface Transport {
  send(data: Uint8Array): void;
  close(code: number, reason: string): void;
  /** Bytes queued by the socket but not yet written. */
  readonly bufferedAmount: number;
}

export interface OpenTransportOptions {
  /** Largest inbound message the socket accepts (the `ws` implementation enforces it). */
  maxPayloadBytes: number;
  /** Give up opening after this long. */
  timeoutMs: number;
  /** Use this WebSocket constructor instead of the global one or `ws`. */
  WebSocket?: WebSocketConstructor;
  /** `false`: open with `ws` and mask every frame with a zero key (see `ConnectOptions.maskFrames`). */
  maskFrames?: boolean;
}

/** The standard WebSocket constructor shape we rely on. */
export type WebSocketConstructor = new (url: string) => WebSocket;

type NodeWs = import('ws').WebSocket;

/** Opens a WebSocket to `url`; resolves once it is open. */
export async function openTransport(url: string, handlers: TransportHandlers, options: OpenTransportOptions): Promise<Transport> {
  const maskFrames = options.maskFrames ?? true;
  const Standard = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  // A standard WebSocket always masks with random keys, so an unmasked connection takes `ws`.
  if (Standard !== undefined && maskFrames) return openStandard(Standard, url, handlers, options.timeoutMs);
  const { WebSocket: Ws } = await import('ws');
  const wsOptions: import('ws').ClientOptions = { maxPayload: options.maxPayloadBytes, perMessageDeflate: false };
  // With an all-zero key, ws's sender and the broker's receiver both skip the XOR pass and its copy.
  if (!maskFrames) wsOptions.generateMask = (mask) => void mask.fill(0);
  return openNode(new Ws(url, wsOptions), handlers, options.timeoutMs);
}

function withTimeout<T>(timeoutMs: number, url: string, start: (resolve: (v: T) => void, reject: (e: Error) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let abort = (): void => {};
    const timer = setTimeout(() => {
      abort();
      reject(new Error(`could not connect to ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    abort = start(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function openNode(ws: NodeWs, handlers: TransportHandlers, timeoutMs: number): Promise<Transport> {
  return withTimeout(timeoutMs, ws.url, (resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      ws.on('error', () => {}); // a close event always follows
      ws.on('message', (data: Buffer) => handlers.onMessage(data));
      ws.on('close', (code, reason) => handlers.onClose(code, reason.toString()));
      resolve({
        send: (data) => ws.send(data),
        close: (code, reason) => ws.close(code, reason),
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
      });
    });
    return () => ws.terminate();
  });
}

function openStandard(Ctor: WebSocketConstructor, url: string, handlers: TransportHandlers, timeoutMs: number): Promise<Transport> {
  const ws = new Ctor(url);
  ws.binaryType = 'arraybuffer';
  return withTimeout(timeoutMs, url, (resolve, reject) => {
    ws.onerror = () => reject(new Error(`could not connect to ${url}`));
    ws.onopen = () => {
      ws.onerror = null;
      ws.onmessage = (event: MessageEvent) => {
        if (event.data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(event.data));
      };
      ws.onclose = (event: CloseEvent) => handlers.onClose(event.code, event.reason);
      resolve({
        send: (data) => ws.send(data),
        close: (code, reason) => ws.close(code, reason),
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
      });
    };
    return () => ws.close();
  });
}
