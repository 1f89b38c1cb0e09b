/**
 * The client's address behind reverse proxies. A forwarding header is
 * believed only when the TCP peer is a trusted proxy, and then only as far
 * as the chain of trusted proxies goes: the hops are read from the right
 * (the nearest proxy's entry last), trusted proxies are skipped, and the
 * first untrusted hop is the client. Anything left of it was written by
 * the client itself and may be forged.
 */
import { BlockList, isIP, isIPv4 } from 'node:net';
import { ConfigError } from '../errors.ts';

/** Which forwarding header the trusted proxies write. */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded';

/**
 * Most answers an AddressSet remembers. Past it the memory is cleared and
 * starts over, so a client rotating through addresses costs a BlockList
 * check per lookup, as without the memory, and never more memory.
 */
export const ADDRESS_SET_MEMO_SIZE = 4096;

/**
 * A set of address ranges (CIDRs or single addresses, IPv4 and IPv6).
 * Its answers are remembered per address string: the ranges never change,
 * and a BlockList check builds a SocketAddress each time, which cost about
 * a tenth of an upgrade when every upgrade asked two or three times.
 */
export class AddressSet {
  readonly #list = new BlockList();
  readonly #memo = new Map<string, boolean>();
  readonly size: number;

  /**
   * Takes CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses;
   * throws ConfigError naming `option` for anything else.
   */
  constructor(ranges: readonly string[], option: string) {
    if (!Array.isArray(ranges)) throw new ConfigError(option, 'must be an array of CIDRs');
    for (const range of ranges) addRange(this.#list, range, option);
    this.size = ranges.length;
  }

  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of the ranges. */
  has(address: string | undefined): boolean {
    if (this.size === 0 || address === undefined) return false;
    const memo = this.#memo;
    const known = memo.get(address);
    if (known !== undefined) return known;
    const bare = unmapped(address);
    const family = isIP(bare);
    const inside = family !== 0 && this.#list.check(bare, family === 4 ? 'ipv4' : 'ipv6');
    if (memo.size >= ADDRESS_SET_MEMO_SIZE) memo.clear();
    memo.set(address, inside);
    return inside;
  }
}

function addRange(list: BlockList, range: unknown, option: string): void {
  if (typeof range !== 'string') throw new ConfigError(option, 'must be an array of CIDR strings');
  const slash = range.indexOf('/');
  const address = slash < 0 ? range : range.slice(0, slash);
  const family = isIP(address);
  if (family === 0) throw new ConfigError(option, `"${range}" is not an IP address or CIDR`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : range.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    throw new ConfigError(option, `"${range}" has an invalid prefix length (0 to ${max})`);
  }
  list.addSubnet(address, Number(prefixText), family === 4 ? 'ipv4' : 'ipv6');
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged (a zone index dropped). */
export function unmapped(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 0x3a) {
    const lower = address.toLowerCase();
    if (lower.startsWith('::ffff:') && isIPv4(lower.slice(7))) return lower.slice(7);
  }
  const zone = address.indexOf('%');
  return zone < 0 ? address : address.slice(0, zone);
}

/** Most hops read from one forwarding header; a longer chain is cut to its rightmost entries. */
export const MAX_FORWARDED_HOPS = 32;
/** Longest forwarding header read, in characters; longer ones are ignored (the peer is the client). */
export const MAX_FORWARDED_HEADER_CHARS = 4096;

/** Resolves client addresses from the peer address and the forwarding header. */
export class ClientAddressResolver {
  readonly #proxies: AddressSet;
  readonly #header: ForwardedHeader;
  /** Forwarding headers that were present but unusable (malformed, too long): the peer was used. */
  malformed = 0;

  constructor(trustedProxies: readonly string[], header: ForwardedHeader = 'x-forwarded-for') {
    this.#proxies = new AddressSet(trustedProxies, 'trustedProxies');
    if (header !== 'x-forwarded-for' && header !== 'forwarded') {
      throw new ConfigError('trustedProxyHeader', 'must be "x-forwarded-for" or "forwarded"');
    }
    this.#header = header;
  }

  /** Whether any proxy is trusted (otherwise the peer address is always the client). */
  get enabled(): boolean {
    return this.#proxies.size > 0;
  }

  /** Whether `address` is a trusted proxy. */
  isTrustedProxy(address: string | undefined): boolean {
    return this.#proxies.has(address);
  }

  /**
   * The client address of a request from `peer` with `headers`: the peer
   * itself unless it is a trusted proxy; otherwise the rightmost hop of the
   * forwarding header that is not a trusted proxy (the leftmost hop when
   * all are trusted). An unreadable hop stops the walk: the trusted proxy
   * right of it is taken as the client.
   */
  resolve(
    peer: string | undefined,
    headers: Record<string, string | string[] | undefined>,
  ): string | undefined {
    if (peer === undefined || !this.#proxies.has(peer)) return peer;
    const raw = headers[this.#header];
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    if (value === undefined || value === '') return peer;
    if (value.length > MAX_FORWARDED_HEADER_CHARS) {
      this.malformed++;
      return peer;
    }
    const hops = this.#header === 'forwarded' ? forwardedHops(value) : value.split(',');
    let client = unmapped(peer);
    const last = Math.max(0, hops.length - MAX_FORWARDED_HOPS);
    for (let i = hops.length - 1; i >= last; i--) {
      const hop = hopAddress(hops[i]!);
      if (hop === undefined) {
        this.malformed++;
        return client;
      }
      client = hop;
      if (!this.#proxies.has(hop)) return hop;
    }
    return client;
  }
}

/** The `for=` values of a Forwarded header, in order (RFC 7239); '' for an element without one. */
function forwardedHops(value: string): string[] {
  const hops: string[] = [];
  for (const element of value.split(',')) {
    let hop = '';
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      hop = pair.slice(eq + 1).trim();
      if (hop.length >= 2 && hop.startsWith('"') && hop.endsWith('"')) hop = hop.slice(1, -1);
    }
    hops.push(hop);
  }
  return hops;
}

/**
 * The IP address of one hop: `1.2.3.4`, `1.2.3.4:port`, `2001:db8::1`, or
 * `[2001:db8::1]:port`; undefined for anything else (`unknown`, an
 * obfuscated identifier, garbage).
 */
function hopAddress(text: string): string | undefined {
  let hop = text.trim();
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']');
    if (end < 0) return undefined;
    const rest = hop.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    hop = hop.slice(1, end);
    return isIP(hop) === 6 ? hop.toLowerCase() : undefined;
  }
  const family = isIP(hop);
  if (family === 6) return unmapped(hop.toLowerCase());
  if (family === 4) return hop;
  const colon = hop.lastIndexOf(':');
  if (colon > 0 && hop.indexOf(':') === colon && /^\d{1,5}$/.test(hop.slice(colon + 1))) {
    const host = hop.slice(0, colon);
    if (isIPv4(host)) return host;
  }
  return undefined;
}
