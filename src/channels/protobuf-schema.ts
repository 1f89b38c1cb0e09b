/**
 * The messages of the channel protocol's Protocol Buffers form, as wshub
 * reads and writes them: field names (the JSON encoding's snake_case keys)
 * and numbers from Centrifugo's `client.proto`. Fields wshub does not use
 * are left out, so a decoder skips them as unknown fields.
 */

/** Scalar field types: `bytes` holds raw bytes (in the JSON form, a raw JSON value). */
export type ScalarType = 'string' | 'bool' | 'uint32' | 'uint64' | 'int32' | 'bytes';

/** A field: a scalar, a nested message, a repeated message or a map with string keys. */
export interface FieldSchema {
  readonly name: string;
  readonly number: number;
  readonly type: ScalarType | MessageSchema;
  /** A repeated message field. */
  readonly repeated?: boolean;
  /** A `map<string, type>` field. */
  readonly map?: boolean;
}

/** A message: its fields, in field-number order, and an index by number (sparse). */
export interface MessageSchema {
  readonly name: string;
  readonly fields: readonly FieldSchema[];
  readonly byNumber: ReadonlyArray<FieldSchema | undefined>;
}

type FieldSpec = [name: string, number: number, type: ScalarType | MessageSchema, kind?: 'repeated' | 'map'];

function message(name: string, specs: FieldSpec[]): MessageSchema {
  const fields = specs.map(([fieldName, number, type, kind]): FieldSchema => ({
    name: fieldName,
    number,
    type,
    ...(kind === 'repeated' ? { repeated: true } : {}),
    ...(kind === 'map' ? { map: true } : {}),
  }));
  const byNumber: Array<FieldSchema | undefined> = [];
  for (const f of fields) byNumber[f.number] = f;
  return { name, fields, byNumber };
}

const EMPTY: FieldSpec[] = [];

// ---- shared -------------------------------------------------------------------------------

export const ErrorMessage = message('Error', [
  ['code', 1, 'uint32'],
  ['message', 2, 'string'],
  ['temporary', 3, 'bool'],
]);

export const ClientInfoMessage = message('ClientInfo', [
  ['user', 1, 'string'],
  ['client', 2, 'string'],
  ['conn_info', 3, 'bytes'],
  ['chan_info', 4, 'bytes'],
]);

export const PublicationMessage = message('Publication', [
  ['data', 4, 'bytes'],
  ['info', 5, ClientInfoMessage],
  ['offset', 6, 'uint64'],
  ['tags', 7, 'string', 'map'],
]);

export const StreamPositionMessage = message('StreamPosition', [
  ['offset', 1, 'uint64'],
  ['epoch', 2, 'string'],
]);

// ---- commands (client → server) -----------------------------------------------------------

export const SubscribeRequestMessage = message('SubscribeRequest', [
  ['channel', 1, 'string'],
  ['token', 2, 'string'],
  ['recover', 3, 'bool'],
  ['epoch', 6, 'string'],
  ['offset', 7, 'uint64'],
  ['data', 8, 'bytes'],
  ['positioned', 9, 'bool'],
  ['recoverable', 10, 'bool'],
  ['join_leave', 11, 'bool'],
  ['delta', 12, 'string'],
]);

const channelOnly = (name: string): MessageSchema => message(name, [['channel', 1, 'string']]);

export const CommandMessage = message('Command', [
  ['id', 1, 'uint32'],
  [
    'connect',
    4,
    message('ConnectRequest', [
      ['token', 1, 'string'],
      ['data', 2, 'bytes'],
      ['subs', 3, SubscribeRequestMessage, 'map'],
      ['name', 4, 'string'],
      ['version', 5, 'string'],
      ['headers', 6, 'string', 'map'],
    ]),
  ],
  ['subscribe', 5, SubscribeRequestMessage],
  ['unsubscribe', 6, channelOnly('UnsubscribeRequest')],
  [
    'publish',
    7,
    message('PublishRequest', [
      ['channel', 1, 'string'],
      ['data', 2, 'bytes'],
    ]),
  ],
  ['presence', 8, channelOnly('PresenceRequest')],
  ['presence_stats', 9, channelOnly('PresenceStatsRequest')],
  [
    'history',
    10,
    message('HistoryRequest', [
      ['channel', 1, 'string'],
      ['limit', 7, 'int32'],
      ['since', 8, StreamPositionMessage],
      ['reverse', 9, 'bool'],
    ]),
  ],
  ['ping', 11, message('PingRequest', EMPTY)],
  ['send', 12, message('SendRequest', [['data', 1, 'bytes']])],
  [
    'rpc',
    13,
    message('RPCRequest', [
      ['data', 1, 'bytes'],
      ['method', 2, 'string'],
    ]),
  ],
  ['refresh', 14, message('RefreshRequest', [['token', 1, 'string']])],
  [
    'sub_refresh',
    15,
    message('SubRefreshRequest', [
      ['channel', 1, 'string'],
      ['token', 2, 'string'],
    ]),
  ],
]);

// ---- replies and pushes (server → client) -------------------------------------------------

export const SubscribeResultMessage = message('SubscribeResult', [
  ['expires', 1, 'bool'],
  ['ttl', 2, 'uint32'],
  ['recoverable', 3, 'bool'],
  ['epoch', 6, 'string'],
  ['publications', 7, PublicationMessage, 'repeated'],
  ['recovered', 8, 'bool'],
  ['offset', 9, 'uint64'],
  ['positioned', 10, 'bool'],
  ['data', 11, 'bytes'],
  ['was_recovering', 12, 'bool'],
]);

const infoOnly = (name: string): MessageSchema => message(name, [['info', 1, ClientInfoMessage]]);

export const PushMessage = message('Push', [
  ['channel', 2, 'string'],
  ['pub', 4, PublicationMessage],
  ['join', 5, infoOnly('Join')],
  ['leave', 6, infoOnly('Leave')],
  [
    'unsubscribe',
    7,
    message('Unsubscribe', [
      ['code', 2, 'uint32'],
      ['reason', 3, 'string'],
    ]),
  ],
  ['message', 8, message('Message', [['data', 1, 'bytes']])],
  [
    'subscribe',
    9,
    message('Subscribe', [
      ['recoverable', 1, 'bool'],
      ['epoch', 4, 'string'],
      ['offset', 5, 'uint64'],
      ['positioned', 6, 'bool'],
      ['data', 7, 'bytes'],
    ]),
  ],
  [
    'connect',
    10,
    message('Connect', [
      ['client', 1, 'string'],
      ['version', 2, 'string'],
      ['data', 3, 'bytes'],
      ['subs', 4, SubscribeResultMessage, 'map'],
      ['expires', 5, 'bool'],
      ['ttl', 6, 'uint32'],
      ['ping', 7, 'uint32'],
      ['pong', 8, 'bool'],
      ['session', 9, 'string'],
      ['node', 10, 'string'],
    ]),
  ],
  [
    'disconnect',
    11,
    message('Disconnect', [
      ['code', 1, 'uint32'],
      ['reason', 2, 'string'],
      ['reconnect', 3, 'bool'],
    ]),
  ],
  [
    'refresh',
    12,
    message('Refresh', [
      ['expires', 1, 'bool'],
      ['ttl', 2, 'uint32'],
    ]),
  ],
]);

export const ReplyMessage = message('Reply', [
  ['id', 1, 'uint32'],
  ['error', 2, ErrorMessage],
  ['push', 4, PushMessage],
  [
    'connect',
    5,
    message('ConnectResult', [
      ['client', 1, 'string'],
      ['version', 2, 'string'],
      ['expires', 3, 'bool'],
      ['ttl', 4, 'uint32'],
      ['data', 5, 'bytes'],
      ['subs', 6, SubscribeResultMessage, 'map'],
      ['ping', 7, 'uint32'],
      ['pong', 8, 'bool'],
      ['session', 9, 'string'],
      ['node', 10, 'string'],
    ]),
  ],
  ['subscribe', 6, SubscribeResultMessage],
  ['unsubscribe', 7, message('UnsubscribeResult', EMPTY)],
  ['publish', 8, message('PublishResult', EMPTY)],
  ['presence', 9, message('PresenceResult', [['presence', 1, ClientInfoMessage, 'map']])],
  [
    'presence_stats',
    10,
    message('PresenceStatsResult', [
      ['num_clients', 1, 'uint32'],
      ['num_users', 2, 'uint32'],
    ]),
  ],
  [
    'history',
    11,
    message('HistoryResult', [
      ['publications', 1, PublicationMessage, 'repeated'],
      ['epoch', 2, 'string'],
      ['offset', 3, 'uint64'],
    ]),
  ],
  ['ping', 12, message('PingResult', EMPTY)],
  ['rpc', 13, message('RPCResult', [['data', 1, 'bytes']])],
  [
    'refresh',
    14,
    message('RefreshResult', [
      ['client', 1, 'string'],
      ['version', 2, 'string'],
      ['expires', 3, 'bool'],
      ['ttl', 4, 'uint32'],
    ]),
  ],
  [
    'sub_refresh',
    15,
    message('SubRefreshResult', [
      ['expires', 1, 'bool'],
      ['ttl', 2, 'uint32'],
    ]),
  ],
]);

/** The field of `schema` named `name` (throws for a name the schema lacks: a programming error). */
export function fieldNamed(schema: MessageSchema, name: string): FieldSchema {
  const field = schema.fields.find((f) => f.name === name);
  if (field === undefined) throw new Error(`${schema.name} has no field ${name}`);
  return field;
}
