/**
 * The JSON encoding of the channel protocol: a WebSocket text frame holds
 * one or more commands (or replies), one JSON object per line. Commands are
 * decoded with bounds; replies and pushes are built as strings, so a
 * publication's data (raw JSON) is never parsed again after it was checked.
 */
import {
  Disconnects,
  DisconnectException,
  COMMAND_METHODS,
  type Command,
  type CommandMethod,
} from './protocol.ts';

/** Limits of decoding. */
export interface DecodeLimits {
  /** Commands one frame may carry. */
  maxCommandsPerFrame: number;
}

const NEWLINE = 0x0a;

/**
 * Splits a text frame into commands. Empty lines are skipped. Throws a
 * DisconnectException (bad request) for a line that is not a JSON object
 * or a frame with more than `maxCommandsPerFrame` commands.
 */
export function decodeCommands(frame: Buffer, limits: DecodeLimits): Command[] {
  const commands: Command[] = [];
  let start = 0;
  while (start < frame.length) {
    let end = frame.indexOf(NEWLINE, start);
    if (end < 0) end = frame.length;
    if (end > start) {
      if (commands.length >= limits.maxCommandsPerFrame) throw badRequest();
      commands.push(parseCommand(frame.toString('utf8', start, end)));
    }
    start = end + 1;
  }
  return commands;
}

function parseCommand(text: string): Command {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest();
  return value;
}

function badRequest(): DisconnectException {
  return new DisconnectException(Disconnects.BAD_REQUEST);
}

/**
 * The command's method: the first request field set, in client.proto's
 * order (`{}` is the answer to a server ping: method undefined). Throws a
 * bad-request DisconnectException when the id is not a non-negative
 * integer or a request field is not an object.
 */
export function methodOf(command: Command): CommandMethod | undefined {
  const id = command.id;
  if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) throw badRequest();
  const fields = command as Record<string, unknown>;
  for (const method of COMMAND_METHODS) {
    const request = fields[method];
    if (request === undefined || request === null) continue;
    if (typeof request !== 'object' || Array.isArray(request)) throw badRequest();
    return method;
  }
  return undefined;
}

/** `{"id":N,"<method>":<resultJson>}`: a reply to a command. */
export function replyJson(id: number, method: string, resultJson: string): string {
  return `{"id":${id},"${method}":${resultJson}}`;
}

/** `{"id":N,"error":{…}}`. */
export function errorReplyJson(
  id: number,
  error: { code: number; message: string; temporary?: boolean },
): string {
  return `{"id":${id},"error":${JSON.stringify(error)}}`;
}

/** `{"push":{"channel":…,"<kind>":<bodyJson>}}`. */
export function pushJson(channel: string, kind: string, bodyJson: string): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"${kind}":${bodyJson}}}`;
}

/** The server's ping: an empty reply. The client answers with an empty command. */
export const PING_JSON = '{}';
