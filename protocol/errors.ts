/**
 * The error registry: every code Berth puts on the wire or throws from the SDK.
 *
 * Codes are wire contract: add or deprecate, never rename. Each key equals its
 * `code`, and every code is listed in `docs/errors.md` (checked by a test).
 */
export const ErrorCodes = {
  E_FRAME_MALFORMED: {
    code: 'E_FRAME_MALFORMED',
    message: 'frame is malformed',
    retryable: false,
  },
  E_FRAME_TOO_LARGE: {
    code: 'E_FRAME_TOO_LARGE',
    message: 'frame exceeds the size limit',
    retryable: false,
  },
  E_FRAME_UNKNOWN_TYPE: {
    code: 'E_FRAME_UNKNOWN_TYPE',
    message: 'unknown frame type',
    retryable: false,
  },
  E_FRAME_INVALID: {
    code: 'E_FRAME_INVALID',
    message: 'frame fields are invalid',
    retryable: false,
  },
  E_FRAME_UNEXPECTED: {
    code: 'E_FRAME_UNEXPECTED',
    message: 'frame is not allowed in this direction or state',
    retryable: false,
  },
  E_HANDSHAKE_REQUIRED: {
    code: 'E_HANDSHAKE_REQUIRED',
    message: 'the first frame must be hello',
    retryable: false,
  },
  E_PROTOCOL_VERSION: {
    code: 'E_PROTOCOL_VERSION',
    message: 'unsupported protocol version',
    retryable: false,
  },
  E_AUTH_FAILED: {
    code: 'E_AUTH_FAILED',
    message: 'authentication failed',
    retryable: false,
  },
  E_HEARTBEAT_TIMEOUT: {
    code: 'E_HEARTBEAT_TIMEOUT',
    message: 'peer sent nothing within the heartbeat timeout',
    retryable: true,
  },
  E_QUEUE_NOT_FOUND: {
    code: 'E_QUEUE_NOT_FOUND',
    message: 'queue does not exist',
    retryable: false,
  },
  E_QUEUE_OPTIONS_MISMATCH: {
    code: 'E_QUEUE_OPTIONS_MISMATCH',
    message: 'queue exists with different options',
    retryable: false,
  },
  E_QUEUE_NOT_EMPTY: {
    code: 'E_QUEUE_NOT_EMPTY',
    message: 'queue is not empty',
    retryable: false,
  },
  E_QUEUE_IN_USE: {
    code: 'E_QUEUE_IN_USE',
    message: 'queue has consumers',
    retryable: false,
  },
  E_MESSAGE_TOO_LARGE: {
    code: 'E_MESSAGE_TOO_LARGE',
    message: 'message body exceeds the size limit',
    retryable: false,
  },
  E_STORE_FAILED: {
    code: 'E_STORE_FAILED',
    message: 'the store could not persist the change',
    retryable: true,
  },
  E_LEASE_EXPIRED: {
    code: 'E_LEASE_EXPIRED',
    message: 'the delivery lease expired and the message was handed out again',
    retryable: false,
  },
  E_QUEUE_FULL: {
    code: 'E_QUEUE_FULL',
    message: 'queue is at its length or byte limit',
    retryable: true,
  },
  E_DELIVERY_UNKNOWN: {
    code: 'E_DELIVERY_UNKNOWN',
    message: 'delivery tag is unknown or already settled',
    retryable: false,
  },
  E_CONSUMER_TAG_IN_USE: {
    code: 'E_CONSUMER_TAG_IN_USE',
    message: 'consumer tag is already in use on this connection',
    retryable: false,
  },
  E_CONSUMER_NOT_FOUND: {
    code: 'E_CONSUMER_NOT_FOUND',
    message: 'no consumer with this tag on this connection',
    retryable: false,
  },
  E_CONNECTION_CLOSED: {
    code: 'E_CONNECTION_CLOSED',
    message: 'connection is closed',
    retryable: true,
  },
  E_TIMEOUT: {
    code: 'E_TIMEOUT',
    message: 'operation timed out',
    retryable: true,
  },
  E_SHUTTING_DOWN: {
    code: 'E_SHUTTING_DOWN',
    message: 'broker is shutting down',
    retryable: true,
  },
  E_RESULT_WAIT_LIMIT: {
    code: 'E_RESULT_WAIT_LIMIT',
    message: 'too many result.get requests are waiting on this connection',
    retryable: true,
  },
  E_TASK_REVOKED: {
    code: 'E_TASK_REVOKED',
    message: 'the task was revoked',
    retryable: false,
  },
  E_INVALID_ARGUMENT: {
    code: 'E_INVALID_ARGUMENT',
    message: 'invalid argument',
    retryable: false,
  },
  E_INTERNAL: {
    code: 'E_INTERNAL',
    message: 'internal error',
    retryable: true,
  },
} as const;

/** One of the registered error codes. */
export type ErrorCode = keyof typeof ErrorCodes;

/** True when `code` is a registered error code. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCodes, code);
}

/** Options of {@link BrokerError}: the standard `cause` plus wire details. */
export interface BrokerErrorOptions extends ErrorOptions {
  /** For a refused publish: how long the producer should wait before trying again. */
  retryAfterMs?: number;
}

/**
 * The one error class of Berth. `code` is a registered {@link ErrorCode};
 * `retryable` says whether the same call may succeed later.
 */
export class BrokerError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: BrokerErrorOptions) {
    super(message ?? ErrorCodes[code].message, options);
    this.name = 'BrokerError';
    this.code = code;
    this.retryable = ErrorCodes[code].retryable;
    this.retryAfterMs = options?.retryAfterMs;
  }
}
