/**
 * Client addresses as the per-address limits count them (pending
 * handshakes, room-password checks).
 */

/**
 * The key per-address counts use: the address itself for IPv4 (also when
 * IPv4-mapped), the /64 prefix for IPv6, since one host commonly holds a
 * whole /64 and could otherwise rotate through it.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  if (!address.includes(':')) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice(7);
  const zone = lower.indexOf('%');
  const bare = zone < 0 ? lower : lower.slice(0, zone);
  const gap = bare.indexOf('::');
  let groups: string[];
  if (gap < 0) groups = bare.split(':');
  else {
    const left = bare.slice(0, gap) === '' ? [] : bare.slice(0, gap).split(':');
    const right = bare.slice(gap + 2) === '' ? [] : bare.slice(gap + 2).split(':');
    groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  }
  const prefix = groups.slice(0, 4).map((g) => (g === '' ? '0' : g.replace(/^0+(?=.)/, '')));
  while (prefix.length < 4) prefix.push('0');
  return `${prefix.join(':')}::/64`;
}
