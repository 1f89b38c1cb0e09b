/**
 * `wshub token`: mints an HS256 token for a client, signed with WS_SECRET
 * (or the file named by --secret-file), and prints only the token.
 */
import { signHS256 } from '../auth/token.ts';
import { intFlag, parseFlags, UsageError } from './args.ts';
import { loadSecret } from './config-file.ts';

/** Help text of `wshub token`. */
export const TOKEN_USAGE = `usage: wshub token [flags]

Prints an HS256 token signed with WS_SECRET (at least 32 bytes) on stdout.

flags:
  --sub ID             subject: the user id (claim "sub")
  --name NAME          display name (claim "name")
  --roles A,B          comma-separated roles (claim "roles")
  --ttl SECONDS        lifetime in seconds (default 3600)
  --secret-file FILE   read the secret from FILE instead of WS_SECRET
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
    help: { type: 'boolean', short: 'h' },
  });
  if (flags.help) {
    process.stdout.write(TOKEN_USAGE);
    return 0;
  }
  const ttl = intFlag('ttl', flags.ttl, 3600, 1, MAX_TTL_SECONDS);
  const secret = await loadSecret(
    { env: 'WS_SECRET', flag: '--secret-file', file: flags['secret-file'] },
    env,
  );
  if (secret === undefined) {
    throw new UsageError('no secret: set WS_SECRET or --secret-file (at least 32 bytes)');
  }
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000) };
  if (flags.sub !== undefined) claims.sub = flags.sub;
  if (flags.name !== undefined) claims.name = flags.name;
  if (flags.roles !== undefined) {
    claims.roles = flags.roles
      .split(',')
      .map((role) => role.trim())
      .filter((role) => role !== '');
  }
  const token = await signHS256(claims, secret, { expiresInSeconds: ttl });
  secret.fill(0);
  process.stdout.write(`${token}\n`);
  return 0;
}
