/**
 * permessage-deflate negotiation (RFC 7692 §5, §7.1): reading the
 * `Sec-WebSocket-Extensions` header of an offer strictly, choosing the first
 * acceptable offer and writing the answer, and, on the client side, checking
 * the server's answer against what was offered.
 *
 * Every malformed element declines only the offer it belongs to (never the
 * handshake, never a crash). Parsing is linear in the header's length and
 * stops after MAX_EXTENSION_ELEMENTS extensions.
 */

/** The extension's registered name. */
export const PERMESSAGE_DEFLATE = 'permessage-deflate';

/** Extensions (of any name) read from one header before the rest is ignored. */
export const MAX_EXTENSION_ELEMENTS = 32;

/** Parameters of one permessage-deflate offer or answer, validated. */
export interface DeflateOffer {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** undefined = not present. */
  serverMaxWindowBits: number | undefined;
  /** undefined = not present; true = present without a value. */
  clientMaxWindowBits: number | true | undefined;
}

/** What this side is willing to use (the server's settings). */
export interface DeflatePolicy {
  /** Largest window the server compresses with (8–15). */
  serverMaxWindowBits: number;
  /** Largest window the server asks a client to compress with, when the client lets it ask (8–15). */
  clientMaxWindowBits: number;
  /** Answer client_no_context_takeover whenever the client offers it (saves an inflate context per connection). */
  preferClientNoContextTakeover: boolean;
}

/** The parameters in use on one connection, from the server's side of the agreement. */
export interface DeflateAgreement {
  /** Always true from a wshub server: one compressed frame serves every recipient. */
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** Window the server's frames are compressed within (8–15). */
  serverWindowBits: number;
  /** Window the client's frames are compressed within (8–15). */
  clientWindowBits: number;
  /** The `Sec-WebSocket-Extensions` value of the answer. */
  header: string;
}

/** One `name; param=value; …` element of the header, before validation. */
interface RawExtension {
  name: string;
  params: Array<[string, string | undefined]>;
  /** A syntax error inside this element: the offer is declined. */
  broken: boolean;
}

const TOKEN_CHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;

function isTokenChar(c: string): boolean {
  return TOKEN_CHAR.test(c);
}

/**
 * Splits the header (possibly repeated) into extension elements. Quoted
 * values are unquoted; a syntax error marks its element broken and skips to
 * the next comma outside quotes.
 */
export function parseExtensions(value: string | string[] | undefined): RawExtension[] {
  if (value === undefined) return [];
  const out: RawExtension[] = [];
  for (const list of Array.isArray(value) ? value : [value]) {
    const n = list.length;
    let i = 0;
    while (i < n && out.length < MAX_EXTENSION_ELEMENTS) {
      const ext: RawExtension = { name: '', params: [], broken: false };
      i = skipOws(list, i);
      if (list[i] === ',') {
        i++;
        continue;
      }
      const start = i;
      while (i < n && isTokenChar(list[i]!)) i++;
      ext.name = list.slice(start, i).toLowerCase();
      if (ext.name === '') ext.broken = true;
      i = skipOws(list, i);
      while (!ext.broken && i < n && list[i] === ';') {
        i = skipOws(list, i + 1);
        const ps = i;
        while (i < n && isTokenChar(list[i]!)) i++;
        const pname = list.slice(ps, i).toLowerCase();
        if (pname === '') {
          ext.broken = true;
          break;
        }
        i = skipOws(list, i);
        let pvalue: string | undefined;
        if (list[i] === '=') {
          i = skipOws(list, i + 1);
          if (list[i] === '"') {
            const read = readQuoted(list, i);
            if (read === null) {
              ext.broken = true;
              break;
            }
            pvalue = read.value;
            i = read.end;
          } else {
            const vs = i;
            while (i < n && isTokenChar(list[i]!)) i++;
            pvalue = list.slice(vs, i);
          }
          // A value must be a token (quoted or not, RFC 7692 §5).
          if (pvalue === '' || ![...pvalue].every(isTokenChar)) {
            ext.broken = true;
            break;
          }
          i = skipOws(list, i);
        }
        ext.params.push([pname, pvalue]);
      }
      if (i < n && list[i] !== ',') ext.broken = true;
      if (ext.broken) i = skipElement(list, i);
      else i++;
      out.push(ext);
    }
  }
  return out;
}

function skipOws(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  return i;
}

/** Reads a quoted-string at s[i] === '"'; null when it does not end. */
function readQuoted(s: string, i: number): { value: string; end: number } | null {
  let value = '';
  for (let k = i + 1; k < s.length; k++) {
    const c = s[k]!;
    if (c === '"') return { value, end: k + 1 };
    if (c === '\\') {
      if (++k >= s.length) return null;
      value += s[k];
    } else value += c;
  }
  return null;
}

/** Index just past the next comma outside quotes. */
function skipElement(s: string, i: number): number {
  let quoted = false;
  for (; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') return i + 1;
  }
  return i;
}

/** A window-bits value: 1*DIGIT without leading zero, 8–15. */
function windowBits(value: string | undefined): number | undefined {
  if (value === undefined || !/^[1-9][0-9]?$/.test(value)) return undefined;
  const bits = Number(value);
  return bits >= 8 && bits <= 15 ? bits : undefined;
}

/**
 * Validates one permessage-deflate element's parameters: only the four of
 * RFC 7692, each at most once, with valid values. null = decline.
 */
export function readDeflateParams(params: ReadonlyArray<[string, string | undefined]>): DeflateOffer | null {
  const offer: DeflateOffer = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  };
  const seen = new Set<string>();
  for (const [name, value] of params) {
    if (seen.has(name)) return null;
    seen.add(name);
    switch (name) {
      case 'server_no_context_takeover':
        if (value !== undefined) return null;
        offer.serverNoContextTakeover = true;
        break;
      case 'client_no_context_takeover':
        if (value !== undefined) return null;
        offer.clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits': {
        const bits = windowBits(value);
        if (bits === undefined) return null;
        offer.serverMaxWindowBits = bits;
        break;
      }
      case 'client_max_window_bits': {
        if (value === undefined) {
          offer.clientMaxWindowBits = true;
          break;
        }
        const bits = windowBits(value);
        if (bits === undefined) return null;
        offer.clientMaxWindowBits = bits;
        break;
      }
      default:
        return null;
    }
  }
  return offer;
}

/**
 * The server's choice: the first permessage-deflate offer it can accept,
 * with the answer to send, or null (no extension). The server always
 * compresses without context takeover; it asks the same of the client when
 * the client offered it and `preferClientNoContextTakeover` is set.
 */
export function negotiateDeflate(
  header: string | string[] | undefined,
  policy: DeflatePolicy,
): DeflateAgreement | null {
  if (header === undefined) return null;
  for (const ext of parseExtensions(header)) {
    if (ext.broken || ext.name !== PERMESSAGE_DEFLATE) continue;
    const offer = readDeflateParams(ext.params);
    if (offer === null) continue;
    return accept(offer, policy);
  }
  return null;
}

function accept(offer: DeflateOffer, policy: DeflatePolicy): DeflateAgreement {
  let header = `${PERMESSAGE_DEFLATE}; server_no_context_takeover`;
  const clientNoContextTakeover = offer.clientNoContextTakeover && policy.preferClientNoContextTakeover;
  if (clientNoContextTakeover) header += '; client_no_context_takeover';
  let serverWindowBits = policy.serverMaxWindowBits;
  if (offer.serverMaxWindowBits !== undefined) {
    serverWindowBits = Math.min(serverWindowBits, offer.serverMaxWindowBits);
    header += `; server_max_window_bits=${serverWindowBits}`;
  }
  let clientWindowBits = 15;
  if (offer.clientMaxWindowBits !== undefined) {
    const offered = offer.clientMaxWindowBits === true ? 15 : offer.clientMaxWindowBits;
    clientWindowBits = Math.min(offered, policy.clientMaxWindowBits);
    header += `; client_max_window_bits=${clientWindowBits}`;
  }
  return {
    serverNoContextTakeover: true,
    clientNoContextTakeover,
    serverWindowBits,
    clientWindowBits,
    header,
  };
}

/** The offer the Node client sends: context takeover off both ways, windows of 15. */
export const CLIENT_DEFLATE_OFFER = `${PERMESSAGE_DEFLATE}; client_no_context_takeover; client_max_window_bits`;

/**
 * The client's check of the server's answer to CLIENT_DEFLATE_OFFER
 * (RFC 7692 §5.1: an answer naming another extension, an unknown or
 * repeated parameter, or more than one permessage-deflate element fails the
 * connection). Returns the agreement as the server sees it, null when the
 * server declined (no header), or an error message.
 */
export function readDeflateAnswer(header: string | string[] | undefined): DeflateAgreement | null | string {
  if (header === undefined) return null;
  const elements = parseExtensions(header);
  if (elements.length === 0) return null;
  if (elements.length > 1) return 'the server answered more than one extension';
  const ext = elements[0]!;
  if (ext.broken || ext.name !== PERMESSAGE_DEFLATE)
    return `the server answered an extension that was not offered: ${ext.name || '(unreadable)'}`;
  const answer = readDeflateParams(ext.params);
  if (answer === null) return 'the server answered invalid permessage-deflate parameters';
  if (answer.clientMaxWindowBits === true) return 'client_max_window_bits needs a value in an answer';
  return {
    serverNoContextTakeover: answer.serverNoContextTakeover,
    // Offered, so the client compresses without context either way.
    clientNoContextTakeover: true,
    serverWindowBits: answer.serverMaxWindowBits ?? 15,
    clientWindowBits: answer.clientMaxWindowBits ?? 15,
    header: Array.isArray(header) ? header.join(', ') : header,
  };
}
