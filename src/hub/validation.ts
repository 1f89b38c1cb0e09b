// Input policies shared by the upgrade pipeline, the hub and the message loop:
// room names, inbound text messages, and making untrusted text safe to log.
import { isUtf8 } from 'node:buffer';
import { CloseCode } from '../protocol/close.ts';

/** Longest room name accepted by the default policy, in UTF-8 bytes. */
export const ROOM_NAME_MAX_BYTES = 128;

/** Decides whether a room name is acceptable; may replace the default policy. */
export type RoomValidator = (room: string) => boolean;

/**
 * Default room policy: returns true when `room` is non-empty, at most
 * {@link ROOM_NAME_MAX_BYTES} bytes and made only of `[A-Za-z0-9._:-]`.
 */
export function isValidRoomName(room: string): boolean {
  // Every allowed character is one ASCII byte, so the UTF-16 length equals
  // the byte length for any name that passes the character check below.
  if (typeof room !== 'string' || room.length === 0 || room.length > ROOM_NAME_MAX_BYTES) {
    return false;
  }
  for (let i = 0; i < room.length; i++) {
    const c = room.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) || // a-z
      (c >= 0x41 && c <= 0x5a) || // A-Z
      (c >= 0x30 && c <= 0x3a) || // 0-9 and ':'
      c === 0x2d || // '-'
      c === 0x2e || // '.'
      c === 0x5f; // '_'
    if (!ok) return false;
  }
  return true;
}

/** Rules applied to inbound text messages. */
export interface TextValidationOptions {
  /** Largest accepted message in bytes (default 1 MiB). */
  maxBytes: number;
  /** Whether a zero-length message is accepted (default false). */
  allowEmpty: boolean;
  /** Whether `\n` is accepted (default true). */
  allowNewline: boolean;
  /** Whether `\t` is accepted (default true). */
  allowTab: boolean;
}

const DEFAULT_TEXT_OPTIONS: Readonly<TextValidationOptions> = Object.freeze({
  maxBytes: 1024 * 1024,
  allowEmpty: false,
  allowNewline: true,
  allowTab: true,
});

/** Returns a fresh copy of the default text validation options. */
export function defaultTextValidationOptions(): TextValidationOptions {
  return { ...DEFAULT_TEXT_OPTIONS };
}

/** Outcome of {@link validateTextMessage}; on failure, the close code and reason to send. */
export type TextValidationResult = { ok: true } | { ok: false; closeCode: TextCloseCode; reason: string };

/** The close codes a text validation failure maps to. */
type TextCloseCode =
  typeof CloseCode.INVALID_PAYLOAD | typeof CloseCode.POLICY_VIOLATION | typeof CloseCode.MESSAGE_TOO_BIG;

const OK: TextValidationResult = Object.freeze({ ok: true });

function fail(closeCode: TextCloseCode, reason: string): TextValidationResult {
  return { ok: false, closeCode, reason };
}

/**
 * Checks a text message, given as the raw received bytes, against `options`
 * (missing fields take the defaults). Returns `{ ok: true }` or the close code
 * to use: 1009 when longer than `maxBytes`, 1007 when not valid UTF-8, 1008
 * when empty (unless allowed) or when it contains a control character (C0
 * other than the allowed `\n`/`\t`, DEL, or C1 U+0080–U+009F).
 */
export function validateTextMessage(
  data: Uint8Array,
  options?: Partial<TextValidationOptions>,
): TextValidationResult {
  const maxBytes = options?.maxBytes ?? DEFAULT_TEXT_OPTIONS.maxBytes;
  const allowEmpty = options?.allowEmpty ?? DEFAULT_TEXT_OPTIONS.allowEmpty;
  const allowNewline = options?.allowNewline ?? DEFAULT_TEXT_OPTIONS.allowNewline;
  const allowTab = options?.allowTab ?? DEFAULT_TEXT_OPTIONS.allowTab;

  const len = data.length;
  if (len > maxBytes) return fail(CloseCode.MESSAGE_TOO_BIG, 'message too large');
  if (len === 0) return allowEmpty ? OK : fail(CloseCode.POLICY_VIOLATION, 'empty message');

  // One pass over the bytes: spot forbidden controls directly and note whether
  // any non-ASCII byte occurs, so pure ASCII never pays for UTF-8 validation.
  let nonAscii = false;
  let control = false;
  for (let i = 0; i < len; i++) {
    const b = data[i]!;
    if (b >= 0x20 && b < 0x7f) continue;
    if (b < 0x20) {
      if ((b === 0x0a && allowNewline) || (b === 0x09 && allowTab)) continue;
      control = true;
    } else if (b === 0x7f) {
      control = true;
    } else {
      nonAscii = true;
      // In well-formed UTF-8, 0xC2 is always a lead byte and C1 controls are
      // exactly C2 80..C2 9F; if the data is malformed, 1007 wins below anyway.
      if (b === 0xc2 && i + 1 < len) {
        const next = data[i + 1]!;
        if (next >= 0x80 && next <= 0x9f) control = true;
      }
    }
  }
  if (nonAscii && !isUtf8(data)) return fail(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8');
  if (control) return fail(CloseCode.POLICY_VIOLATION, 'control character not allowed');
  return OK;
}

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function escapeCodePoint(cp: number): string {
  switch (cp) {
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x5c:
      return '\\\\'; // so a literal "\n" in the input cannot pass for an escaped newline
  }
  return '\\u' + cp.toString(16).padStart(4, '0');
}

function needsEscape(cp: number): boolean {
  return (
    cp < 0x20 ||
    cp === 0x5c ||
    (cp >= 0x7f && cp <= 0x9f) ||
    cp === 0x2028 || // line and paragraph separators break lines in some viewers
    cp === 0x2029
  );
}

/**
 * Makes untrusted text safe for a single log line. Takes a string or raw
 * bytes and returns at most the first `maxLen` characters (code points;
 * default 200, `'…'` appended when cut), with invalid UTF-8 and lone
 * surrogates replaced by U+FFFD and control characters, line separators and
 * backslashes written as visible escapes (`\n`, `\r`, `\t`, `\\`, `\u001b`).
 */
export function sanitizeForLogging(data: string | Uint8Array, maxLen = 200): string {
  if (!Number.isInteger(maxLen) || maxLen < 0) {
    throw new RangeError(`maxLen must be a non-negative integer, got ${String(maxLen)}`);
  }
  let text: string;
  if (typeof data === 'string') {
    text = data;
  } else {
    // A code point takes at most 4 bytes, so this prefix holds the first
    // maxLen + 1 code points intact, enough to know whether we truncate.
    const limit = (maxLen + 1) * 4;
    text = decoder.decode(data.length > limit ? data.subarray(0, limit) : data);
  }

  let out = '';
  let count = 0;
  for (const ch of text) {
    if (count === maxLen) return out + '…';
    count++;
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else if (needsEscape(cp)) out += escapeCodePoint(cp);
    else out += ch;
  }
  return out;
}
