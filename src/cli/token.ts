/**
 * `wshub token`: mints a token for a client, signed with WS_SECRET (or the
 * file named by --secret-file) as HS256, or with a private key file as
 * RS256/ES256/EdDSA, and prints only the token.
 */
import { ASYMMETRIC_ALGORITHMS, signWithPrivateKey, type AsymmetricAlgorithm } from '../auth/token-keys.ts';
import { signHS256 } from '../auth/token.ts';
import { ConfigError } from '../errors.ts';
import { intFlag, parseFlags, UsageError } from './args.ts';
import { loadSecret, readTextFile } from './config-file.ts';

/** Help text of `wshub token`. */
export const TOKEN_USAGE = `usage: wshub token [flags]

Prints an HS256 token signed with WS_SECRET (at least 32 bytes) on stdout, or,
with --private-key-file, a token signed with that key (RS256, ES256, EdDSA, …:
the algorithm follows the key) for servers started with --token-public-key-file
or --jwks-url.

flags:
  --sub ID             subject: the user id (claim "sub")
  --name NAME          display name (claim "name")
  --roles A,B          comma-separated roles (claim "roles")
  --ttl SECONDS        lifetime in seconds (default 3600)
  --secret-file FILE   read the secret from FILE instead of WS_SECRET
  --private-key-file FILE
                       sign with this private key (PEM PKCS#8 or JWK) instead
  --alg ALG            algorithm for the private key (e.g. PS256; default from the key)
  --kid ID             key id in the token header (to pick the key from a JWKS)
  --iss ISS            issuer (claim "iss")
  --aud AUD            audience (claim "aud")
  -h, --help           show this help
`;

/** Longest lifetime accepted: ten years, far beyond any sensible token. */
const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

/** Runs `wshub token [flags]`; returns the exit code. */
export async function tokenCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const flags = parseFlags(argv, {
    sub: { type: 'string' },
    name: { type: 'string' },
    roles: { type: 'string' },
    ttl: { type: 'string' },
    'secret-file': { type: 'string' },
    'private-key-file': { type: 'string' },
    alg: { type: 'string' },
    kid: { type: 'string' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (flags.help) {
    process.stdout.write(TOKEN_USAGE);
    return 0;
  }
  const ttl = intFlag('ttl', flags.ttl, 3600, 1, MAX_TTL_SECONDS);
  const claims = claimsOf(flags);
  const keyFile = flags['private-key-file'];
  if (keyFile !== undefined) {
    if (flags['secret-file'] !== undefined)
      throw new UsageError('--private-key-file and --secret-file cannot be used together');
    const alg = flags.alg;
    if (alg !== undefined && !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg))
      throw new UsageError(`--alg must be one of ${ASYMMETRIC_ALGORITHMS.join(', ')}, got "${alg}"`);
    const pem = await readTextFile(keyFile, '--private-key-file');
    let token: string;
    try {
      token = await signWithPrivateKey(claims, pem, {
        expiresInSeconds: ttl,
        ...(alg !== undefined ? { algorithm: alg as AsymmetricAlgorithm } : {}),
        ...(flags.kid !== undefined ? { kid: flags.kid } : {}),
      });
    } catch (error) {
      if (error instanceof ConfigError) throw new UsageError(`--private-key-file: ${error.message}`);
      throw error;
    }
    process.stdout.write(`${token}\n`);
    return 0;
  }
  if (flags.alg !== undefined || flags.kid !== undefined)
    throw new UsageError('--alg and --kid need --private-key-file');
  const secret = await loadSecret(
    { env: 'WS_SECRET', flag: '--secret-file', file: flags['secret-file'] },
    env,
  );
  if (secret === undefined) {
    throw new UsageError('no secret: set WS_SECRET or --secret-file (at least 32 bytes)');
  }
  const token = await signHS256(claims, secret, { expiresInSeconds: ttl });
  secret.fill(0);
  process.stdout.write(`${token}\n`);
  return 0;
}

/** The claims the flags ask for, with `iat` now. */
function claimsOf(flags: {
  sub?: string | undefined;
  name?: string | undefined;
  roles?: string | undefined;
  iss?: string | undefined;
  aud?: string | undefined;
}): Record<string, unknown> {
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000) };
  if (flags.sub !== undefined) claims.sub = flags.sub;
  if (flags.name !== undefined) claims.name = flags.name;
  if (flags.roles !== undefined) {
    claims.roles = flags.roles
      .split(',')
      .map((role) => role.trim())
      .filter((role) => role !== '');
  }
  if (flags.iss !== undefined) claims.iss = flags.iss;
  if (flags.aud !== undefined) claims.aud = flags.aud;
  return claims;
}
