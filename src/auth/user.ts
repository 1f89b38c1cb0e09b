/**
 * The identity a connection carries after token authentication.
 * `claims` holds every claim of the token (a copy), so applications can read
 * custom claims without wshub having to know about them.
 */
export interface UserInfo {
  id: string;
  name?: string;
  email?: string;
  roles: string[];
  claims: Record<string, unknown>;
}

/**
 * Builds a UserInfo from a verified claims set.
 * Takes the claims object; returns `sub` as `id` ('' when missing or not a string),
 * `name` and `email` only when they are strings, `roles` keeping only the string
 * entries of an array `roles` claim, and a copy of all claims.
 */
export function userInfoFromClaims(claims: Record<string, unknown>): UserInfo {
  const user: UserInfo = {
    id: typeof claims.sub === 'string' ? claims.sub : '',
    roles: Array.isArray(claims.roles)
      ? (claims.roles as unknown[]).filter((r): r is string => typeof r === 'string')
      : [],
    claims: copyClaims(claims),
  };
  if (typeof claims.name === 'string') user.name = claims.name;
  if (typeof claims.email === 'string') user.email = claims.email;
  return user;
}

// A deep copy keeps nested claims from changing under the connection when the
// caller reuses its object; claims that cannot be cloned (functions, from code
// rather than from a token) fall back to a shallow copy.
function copyClaims(claims: Record<string, unknown>): Record<string, unknown> {
  try {
    return structuredClone(claims);
  } catch {
    return { ...claims };
  }
}
