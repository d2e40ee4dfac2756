/**
 * The broker process: fastify serves HTTP (`/healthz`, `/metrics`, `/api/*`) and
 * the WebSocket endpoint on one port; the engine runs over the SQLite store.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fastify } from 'fastify';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { BrokerError } from '../protocol/index.js';
import { openSqliteStore, type Store } from '../storage/index.js';
import { BusyPoll } from './busy-poll.js';
import { CloseCode, Connection } from './connection.js';
import { Engine } from './engine/engine.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { databasePath, resolveOptions, type BrokerOptions } from './options.js';

/** How long `close()` waits for clients to answer the close frame before it cuts their sockets. */
const CLOSE_HANDSHAKE_GRACE_MS = 2000;

/** Resolves once every client socket has closed, or after `graceMs`, whichever comes first. */
async function closeHandshakes(wss: WebSocketServer, graceMs: number): Promise<void> {
  const open = [...wss.clients].filter((ws) => ws.readyState !== ws.CLOSED);
  if (open.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(open.map((ws) => new Promise((resolve) => ws.once('close', resolve)))),
    new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
  ]);
  clearTimeout(timer);
}

/** A running broker. */
export interface Broker {
  /** `ws://host:port`; HTTP is served on the same port. */
  readonly url: string;
  readonly port: number;
  /** Open client connections. */
  readonly connectionCount: number;
  readonly engine: Engine;
  /** Closes connections (1001), commits what is pending, closes the store. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a broker; resolves once it listens. Throws on bad options or a store that cannot open. */
export async function startBroker(input: Partial<BrokerOptions> = {}): Promise<Broker> {
  const options = resolveOptions(input);
  const log: Logger = options.logger ?? createLogger();
  const store: Store = openSqliteStore({
    path: options.dataDir === null ? ':memory:' : databasePath(options.dataDir),
    durability: options.durability,
  });
  const engine = new Engine({
    store,
    logger: log.child({ component: 'engine' }),
    clock: options.clock,
    laneBufferSize: options.laneBufferSize,
    resultTtlMs: options.resultTtlMs,
    resultSweepMs: options.resultSweepMs,
    maxResultWaiters: options.maxResultWaiters,
  });
  const connections = new Set<Connection>();
  const busyPoll = new BusyPoll(options.busyPollUs);
  const registry = createMetrics(engine, () => connections.size, busyPoll);

  // Request logs are at info; keep HTTP quiet unless something goes wrong.
  const app = fastify({ loggerInstance: log.child({ component: 'http' }, { level: 'warn' }) });
  app.get('/healthz', async () => ({ status: 'ok', connections: connections.size }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  // The management API changes state: with a token configured it wants `Authorization: Bearer <token>`.
  app.addHook('onRequest', async (req, reply) => {
    if (options.token === null || !req.url.startsWith('/api/')) return;
    if (req.headers.authorization !== `Bearer ${options.token}`) {
      await reply.code(401).send({ code: 'E_AUTH_FAILED', message: 'the management API needs "Authorization: Bearer <token>"' });
    }
  });
  app.get('/api/queues', async () => ({ queues: engine.queueStats() }));
  app.post<{ Params: { name: string }; Querystring: { to?: string; limit?: string } }>('/api/queues/:name/redrive', async (req, reply) => {
    try {
      const opts: { to?: string; limit?: number } = {};
      if (req.query.to !== undefined) opts.to = req.query.to;
      if (req.query.limit !== undefined) opts.limit = Number(req.query.limit);
      if (opts.limit !== undefined && !(Number.isSafeInteger(opts.limit) && opts.limit > 0 && opts.limit <= 1_000_000)) {
        return await reply.code(400).send({ code: 'E_INVALID_ARGUMENT', message: '"limit" must be an integer from 1 to 1000000' });
      }
      return { moved: engine.redrive(req.params.name, opts) };
    } catch (err) {
      if (err instanceof BrokerError) {
        return reply.code(err.code === 'E_QUEUE_NOT_FOUND' ? 404 : 400).send({ code: err.code, message: err.message });
      }
      throw err;
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes, perMessageDeflate: false });
  app.server.on('upgrade', (req, socket, head) => {
    if (connections.size >= options.maxConnections) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = randomUUID();
      const conn = new Connection({ id, ws, engine, options, busyPoll, log: log.child({ connId: id }) });
      connections.add(conn);
      ws.on('close', () => connections.delete(conn));
    });
  });

  const heartbeat =
    options.heartbeatMs > 0
      ? setInterval(() => {
          const now = options.clock();
          for (const conn of connections) conn.tick(now);
        }, Math.min(250, Math.floor(options.heartbeatMs / 2)))
      : null;
  heartbeat?.unref();

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    store.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `ws://${host}:${port}`;
  log.info({ url, dataDir: options.dataDir, durability: options.durability }, 'broker listening');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (heartbeat !== null) clearInterval(heartbeat);
      busyPoll.close();
      for (const conn of connections) conn.close(CloseCode.goingAway, 'E_SHUTTING_DOWN', 'broker is shutting down');
      engine.close();
      // The close frames sit behind whatever the sockets still had to send (deliveries to a busy
      // consumer); destroyed at once, a socket drops them and its client sees an abrupt loss, not
      // E_SHUTTING_DOWN. Clients answer a close frame at once; the ones that do not are cut.
      await closeHandshakes(wss, CLOSE_HANDSHAKE_GRACE_MS);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await app.close();
      store.close();
      log.info('broker closed');
    })();
    return closing;
  };

  return {
    url,
    port,
    engine,
    get connectionCount() {
      return connections.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
