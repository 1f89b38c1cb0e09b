/**
 * The methods of the Centrifugo-compatible server API: each takes the
 * parsed JSON body of `POST <apiPath>/<method>`, checks it field by field
 * and calls the ChannelApi. Request and result shapes are Centrifugo v6's
 * (snake_case, unknown fields ignored).
 *
 * Two kinds of bad input, as Centrifugo tells them apart: a body whose
 * fields have the wrong JSON type cannot be decoded at all
 * (RequestShapeError, answered with HTTP 400); a body that decodes but
 * asks for something invalid (no channel, too many channels, an option
 * wshub cannot honour) is a command error 107 inside an HTTP 200 reply.
 */
import type { ChannelApi, DisconnectOptions, HistoryQuery, PublishOptions } from '../channels/api.ts';
import {
  ReplyErrorException,
  ReplyErrors,
  type Disconnect,
  type Json,
  type ReplyError,
  type StreamPosition,
} from '../channels/protocol.ts';
import { WshubError } from '../errors.ts';

/** The methods served, as they appear in the URL. */
export const SERVER_API_METHODS = [
  'publish',
  'broadcast',
  'presence',
  'presence_stats',
  'history',
  'history_remove',
  'unsubscribe',
  'disconnect',
  'channels',
  'info',
] as const;
export type ServerApiMethod = (typeof SERVER_API_METHODS)[number];

/** Whether `name` is one of SERVER_API_METHODS. */
export function isServerApiMethod(name: string): name is ServerApiMethod {
  return (SERVER_API_METHODS as readonly string[]).includes(name);
}

/** A command error as the server API writes it: code and message only. */
// A type alias (not an interface), so it is assignable to Json.
export type ApiError = { code: number; message: string };

/** One reply body: `{"result": …}` or `{"error": {code, message}}`. */
export type ApiReply = { result: Json } | { error: ApiError };

/** The body does not decode into the method's request (a field of the wrong JSON type). */
export class RequestShapeError extends WshubError {
  constructor(message: string) {
    super('API_BAD_REQUEST', message);
  }
}

/** Limits the methods apply to what a request may ask. */
export interface MethodLimits {
  /** Most channels in one broadcast. */
  maxBroadcastChannels: number;
  /** Longest `pattern` of the channels method, in characters. */
  maxPatternLength: number;
  /** Publications of one broadcast in flight at once. */
  broadcastConcurrency: number;
}

/** The longest close reason a close frame can carry, in UTF-8 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;
/** Application close codes a disconnect may use (3000–4999; the SDKs reconnect below 3500 and 4000–4499). */
const MIN_DISCONNECT_CODE = 3000;
const MAX_DISCONNECT_CODE = 4999;
const INT32_MAX = 2 ** 31 - 1;

type Body = Record<string, unknown>;

/** A command error 107 whose message says what was wrong. */
function badRequest(detail: string): ReplyErrorException {
  return new ReplyErrorException({
    code: ReplyErrors.BAD_REQUEST.code,
    message: `${ReplyErrors.BAD_REQUEST.message}: ${detail}`,
  });
}

/**
 * Runs `method` with the request `body` (a JSON object) against `api`.
 * Resolves with the reply; rejects with RequestShapeError when the body
 * does not decode, and with whatever the api threw when it failed in a way
 * other than a ReplyErrorException (the caller answers that as 100).
 */
export async function runServerApiMethod(
  method: ServerApiMethod,
  body: Body,
  api: ChannelApi,
  limits: MethodLimits,
): Promise<ApiReply> {
  try {
    // Decoding happens before any call, so a body with one wrong field executes nothing.
    const run = decode(method, body, limits);
    return { result: await run(api) };
  } catch (error) {
    if (error instanceof ReplyErrorException) return { error: apiError(error.error) };
    throw error;
  }
}

/** The wire form of a reply error (the server API carries no `temporary` flag). */
export function apiError(error: ReplyError): ApiError {
  return { code: error.code, message: error.message };
}

type Call = (api: ChannelApi) => Promise<Json>;

function decode(method: ServerApiMethod, body: Body, limits: MethodLimits): Call {
  switch (method) {
    case 'publish':
      return decodePublish(body);
    case 'broadcast':
      return decodeBroadcast(body, limits);
    case 'presence': {
      const channel = requiredChannel(body);
      return async (api) => ({ presence: toJson(await api.presence(channel)) });
    }
    case 'presence_stats': {
      const channel = requiredChannel(body);
      return async (api) => {
        const stats = await api.presenceStats(channel);
        return { num_clients: stats.num_clients, num_users: stats.num_users };
      };
    }
    case 'history':
      return decodeHistory(body);
    case 'history_remove': {
      const channel = requiredChannel(body);
      return async (api) => {
        await api.historyRemove(channel);
        return {};
      };
    }
    case 'unsubscribe':
      return decodeUnsubscribe(body);
    case 'disconnect':
      return decodeDisconnect(body);
    case 'channels': {
      const pattern = optionalString(body, 'pattern') ?? '';
      if (pattern.length > limits.maxPatternLength) {
        throw badRequest(`pattern is longer than ${limits.maxPatternLength} characters`);
      }
      return async (api) => ({ channels: toJson(await api.channels(pattern === '' ? undefined : pattern)) });
    }
    case 'info':
      return async (api) => toJson(await api.info());
  }
}

/** What publish and broadcast share: the data and the publication options. */
interface PublicationRequest {
  data: Json;
  options: PublishOptions;
}

function decodePublication(body: Body): PublicationRequest {
  const b64data = optionalString(body, 'b64data');
  const idempotencyKey = optionalString(body, 'idempotency_key');
  const version = optionalInteger(body, 'version', 0, Number.MAX_SAFE_INTEGER);
  const versionEpoch = optionalString(body, 'version_epoch');
  optionalBoolean(body, 'delta');
  const skipHistory = optionalBoolean(body, 'skip_history');
  const tags = optionalStringMap(body, 'tags');
  if (b64data !== undefined && b64data !== '') {
    // Channels speak the JSON protocol, whose publications are JSON values:
    // binary could reach no subscriber as sent, so it is refused outright.
    throw badRequest('b64data is not supported: channels carry JSON, send the payload in "data"');
  }
  // Options whose neglect would change what is delivered are refused rather than ignored.
  if (idempotencyKey !== undefined && idempotencyKey !== '') {
    throw badRequest('idempotency_key is not supported');
  }
  if ((version !== undefined && version !== 0) || (versionEpoch !== undefined && versionEpoch !== '')) {
    throw badRequest('version and version_epoch are not supported');
  }
  if (!Object.hasOwn(body, 'data')) throw badRequest('data is required');
  const options: PublishOptions = {};
  if (skipHistory === true) options.skipHistory = true;
  if (tags !== undefined && Object.keys(tags).length > 0) options.tags = tags;
  return { data: body['data'] as Json, options };
}

function decodePublish(body: Body): Call {
  const channel = optionalString(body, 'channel') ?? '';
  const publication = decodePublication(body);
  if (channel === '') throw badRequest('channel is required');
  return async (api) => publishResult(await api.publish(channel, publication.data, publication.options));
}

function publishResult(result: { offset?: number; epoch?: string }): Json {
  const out: Record<string, Json> = {};
  if (result.offset !== undefined) out['offset'] = result.offset;
  if (result.epoch !== undefined) out['epoch'] = result.epoch;
  return out;
}

function decodeBroadcast(body: Body, limits: MethodLimits): Call {
  const channels = optionalStringArray(body, 'channels') ?? [];
  const publication = decodePublication(body);
  if (channels.length === 0) throw badRequest('channels are required');
  if (channels.length > limits.maxBroadcastChannels) {
    throw badRequest(`at most ${limits.maxBroadcastChannels} channels in one broadcast`);
  }
  return async (api) => {
    const responses: Json[] = new Array<Json>(channels.length).fill(null);
    const publishOne = async (i: number): Promise<void> => {
      const channel = channels[i] ?? '';
      if (channel === '') {
        responses[i] = { error: apiError(badRequest('channel is required').error) };
        return;
      }
      try {
        responses[i] = {
          result: publishResult(await api.publish(channel, publication.data, publication.options)),
        };
      } catch (error) {
        // One channel's failure is that channel's answer; the others still go out.
        const reply =
          error instanceof ReplyErrorException ? error.error : (ReplyErrors.INTERNAL as ReplyError);
        responses[i] = { error: apiError(reply) };
      }
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < channels.length) await publishOne(next++);
    };
    const workers = Math.min(limits.broadcastConcurrency, channels.length);
    await Promise.all(Array.from({ length: workers }, worker));
    return { responses };
  };
}

function decodeHistory(body: Body): Call {
  const channel = optionalString(body, 'channel') ?? '';
  const limit = optionalInteger(body, 'limit', -INT32_MAX - 1, INT32_MAX);
  const reverse = optionalBoolean(body, 'reverse');
  const sinceBody = optionalObject(body, 'since');
  let since: StreamPosition | undefined;
  if (sinceBody !== undefined) {
    since = {
      offset: optionalInteger(sinceBody, 'offset', 0, Number.MAX_SAFE_INTEGER, 'since.offset') ?? 0,
      epoch: optionalString(sinceBody, 'epoch', 'since.epoch') ?? '',
    };
  }
  if (channel === '') throw badRequest('channel is required');
  // Without a limit Centrifugo returns only the stream position, as limit 0 does here.
  const query: HistoryQuery = { limit: limit ?? 0 };
  if (since !== undefined) query.since = since;
  if (reverse === true) query.reverse = true;
  return async (api) => {
    const history = await api.history(channel, query);
    return { publications: toJson(history.publications), offset: history.offset, epoch: history.epoch };
  };
}

function decodeUnsubscribe(body: Body): Call {
  const user = optionalString(body, 'user') ?? '';
  const channel = optionalString(body, 'channel') ?? '';
  const client = optionalString(body, 'client') ?? '';
  const session = optionalString(body, 'session') ?? '';
  if (channel === '') throw badRequest('channel is required');
  if (session !== '') throw badRequest('session is not supported');
  return async (api) => {
    await api.unsubscribe(channel, user, client === '' ? undefined : client);
    return {};
  };
}

function decodeDisconnect(body: Body): Call {
  const user = optionalString(body, 'user') ?? '';
  const client = optionalString(body, 'client') ?? '';
  const session = optionalString(body, 'session') ?? '';
  const whitelist = optionalStringArray(body, 'whitelist') ?? [];
  const disconnectBody = optionalObject(body, 'disconnect');
  let disconnect: Disconnect | undefined;
  if (disconnectBody !== undefined) {
    const code = optionalInteger(disconnectBody, 'code', 0, INT32_MAX, 'disconnect.code') ?? 0;
    const reason = optionalString(disconnectBody, 'reason', 'disconnect.reason') ?? '';
    // Code 0 is what an SDK sends for an empty Disconnect: the default one.
    if (code !== 0) {
      if (code < MIN_DISCONNECT_CODE || code > MAX_DISCONNECT_CODE) {
        throw badRequest(`disconnect.code must be ${MIN_DISCONNECT_CODE}–${MAX_DISCONNECT_CODE}`);
      }
      if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) {
        throw badRequest(`disconnect.reason is longer than ${MAX_CLOSE_REASON_BYTES} bytes`);
      }
      disconnect = { code, reason };
    }
  }
  if (session !== '') throw badRequest('session is not supported');
  // Ignoring a whitelist would disconnect the very clients it names.
  if (whitelist.length > 0) throw badRequest('whitelist is not supported');
  if (user === '' && client === '') throw badRequest('user is required');
  const options: DisconnectOptions = {};
  if (client !== '') options.client = client;
  if (disconnect !== undefined) options.disconnect = disconnect;
  return async (api) => {
    await api.disconnect(user, options);
    return {};
  };
}

function requiredChannel(body: Body): string {
  const channel = optionalString(body, 'channel') ?? '';
  if (channel === '') throw badRequest('channel is required');
  return channel;
}

// ---- field readers: absent and null both mean "not given", as Go's decoder reads them ----

function field(body: Body, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

function optionalString(body: Body, name: string, label = name): string | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new RequestShapeError(`"${label}" must be a string`);
  return value;
}

function optionalBoolean(body: Body, name: string): boolean | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new RequestShapeError(`"${name}" must be a boolean`);
  return value;
}

function optionalInteger(
  body: Body,
  name: string,
  min: number,
  max: number,
  label = name,
): number | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RequestShapeError(`"${label}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** A JSON object (not an array), or undefined. */
export function asObject(value: unknown): Body | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Body) : undefined;
}

function optionalObject(body: Body, name: string): Body | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  const object = asObject(value);
  if (object === undefined) throw new RequestShapeError(`"${name}" must be an object`);
  return object;
}

function optionalStringArray(body: Body, name: string): string[] | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new RequestShapeError(`"${name}" must be an array of strings`);
  }
  return value;
}

function optionalStringMap(body: Body, name: string): Record<string, string> | undefined {
  const object = optionalObject(body, name);
  if (object === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(object)) {
    if (typeof value !== 'string') throw new RequestShapeError(`"${name}" must map strings to strings`);
    // Defined as own data properties, so a "__proto__" tag stays a tag.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The ChannelApi's results are JSON-shaped records; this only tells the compiler so. */
function toJson(value: object): Json {
  return value as Json;
}
