/** Public surface of the broker. */
export { startBroker } from './broker.js';
export { DEFAULTS, resolveOptions } from './options.js';
export { DEFAULT_QUEUE_OPTIONS } from './engine/queue-options.js';
export type { Broker } from './broker.js';
export type { BrokerOptions } from './options.js';
export type { ResolvedQueueOptions } from './engine/queue-options.js';
