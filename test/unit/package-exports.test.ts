// The package as users import it: `wshub`, `wshub/redis` and `wshub/nats`
// resolved through package.json `exports` (the package refers to itself by
// name) to the built dist/. Checks that the core entry point loads neither
// messaging client, what each entry point exports (values at run time, and
// values plus types in the shipped declarations), and that a missing client
// package is reported by name, by the library and by `wshub serve --broker`.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { cliCommand } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HIDE_CLIENTS = fileURLToPath(new URL('../helpers/hide-broker-clients.mjs', import.meta.url));

/** Every name `import … from 'wshub'` offers; a change here is a change of the public API (README "Public API"). */
const CORE_VALUES = [
  'BEARER_PROTOCOL_PREFIX',
  'BROWSER_PROTOCOL',
  'BrokerClientMissingError',
  'BrokerUrlError',
  'CloseCode',
  'CloseError',
  'Cluster',
  'ConfigError',
  'Connection',
  'ConnectionClosedError',
  'DialError',
  'HS256TokenAuthenticator',
  'Hub',
  'InvalidRoomPasswordError',
  'InvalidTokenError',
  'IpcRelay',
  'IpcTransport',
  'MAX_READ_LIMIT',
  'MIN_SECRET_BYTES',
  'MemoryBus',
  'MemoryTransport',
  'MessageQueue',
  'Opcode',
  'PRESENCE_MAX_BYTES',
  'PRESENCE_MAX_PARTS',
  'PRESENCE_MAX_ROOMS',
  'QueueFullError',
  'ROOM_NAME_MAX_BYTES',
  'ReceiveTimeoutError',
  'RoomAuthBusyError',
  'RoomPasswords',
  'SLOW_CONSUMER_CLOSE_CODE',
  'SecretReuseError',
  'SecureRoomAuth',
  'SendTimeoutError',
  'TOKEN_EXPIRED_CLOSE_CODE',
  'WeakSecretError',
  'WshubError',
  'WshubServer',
  'JwtAuthenticator',
  'TokenKeysUnavailableError',
  'createJwtAuthenticator',
  'signWithPrivateKey',
  'ChannelNode',
  'MemoryEngine',
  'Namespaces',
  'defaultChannelOptions',
  'Disconnects',
  'DisconnectException',
  'ReplyErrors',
  'ReplyErrorException',
  'Unsubscribes',
  'defaultChannelBounds',
  'checkApiKey',
  'boundedServerOptions',
  'constantTimeEqual',
  'createWshub',
  'createMetricsRegistry',
  'registerWshubMetrics',
  'defaultConfig',
  'defaultHubOptions',
  'defaultTextValidationOptions',
  'dial',
  'generateSecureSecret',
  'isRejected',
  'isValidCloseCode',
  'isValidRoomName',
  'messageQueue',
  'sanitizeForLogging',
  'signHS256',
  'transportFromUrl',
  'userInfoFromClaims',
  'validateRoomPassword',
  'validateSecurityConfig',
  'validateTextMessage',
  'validateWebSocketKey',
];

/** The type-only names of 'wshub'. */
const CORE_TYPES = [
  'ChannelEngine',
  'EngineReceiver',
  'EngineMetrics',
  'EnginePublication',
  'PublicationInput',
  'ChannelHooks',
  'ChannelLimits',
  'ChannelMetrics',
  'ChannelNodeOptions',
  'RpcContext',
  'ChannelClient',
  'ChannelOptions',
  'ChannelsConfig',
  'NamespaceConfig',
  'ClientInfo',
  'Disconnect',
  'Json',
  'Publication',
  'ReplyError',
  'ChannelApi',
  'DisconnectOptions',
  'HistoryQuery',
  'HistoryReply',
  'NodeInfo',
  'PublishOptions',
  'PublishResult',
  'ChannelBounds',
  'RoomSink',
  'BroadcastResult',
  'BrokerKind',
  'ClusterMetrics',
  'ClusterOptions',
  'ConnectionState',
  'DataOpcode',
  'DialOptions',
  'HS256Options',
  'AsymmetricAlgorithm',
  'JwksOptions',
  'TokenKeyOptions',
  'TokenClaimOptions',
  'Health',
  'HubMetrics',
  'HubOptions',
  'InvalidTokenReason',
  'JoinDenial',
  'JoinResult',
  'LogEntry',
  'MessageHandler',
  'ProtocolSelector',
  'ReceivedMessage',
  'RoomAuthContext',
  'RoomAuthorizer',
  'RoomPasswordCheck',
  'RoomPasswordMetrics',
  'RoomPasswordsOptions',
  'RoomValidator',
  'SecureRoomAuthOptions',
  'SecurityConfig',
  'SecurityMetrics',
  'SendBehavior',
  'ServerMetrics',
  'ShutdownOptions',
  'TextValidationOptions',
  'TextValidationResult',
  'TokenAuthenticator',
  'Transport',
  'TransportEvents',
  'TransportFromUrlOptions',
  'TransportListener',
  'UpgradeRequest',
  'UserInfo',
  'WshubConfig',
];

const SUBPATHS = {
  redis: {
    values: ['Cluster', 'RedisClusterTransport', 'RedisEngine', 'RedisEngineError', 'RedisTransport'],
    types: [
      'ChannelEngine',
      'ClusterMetrics',
      'ClusterOptions',
      'RedisClusterTransportOptions',
      'RedisEngineOptions',
      'RedisTransportOptions',
      'Transport',
    ],
  },
  nats: {
    values: ['Cluster', 'NatsTransport'],
    types: ['ClusterMetrics', 'ClusterOptions', 'NatsTransportOptions', 'Transport'],
  },
} as const;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    newest = Math.max(newest, stat.isDirectory() ? newestMtime(path) : stat.mtimeMs);
  }
  return newest;
}

/** Builds dist/ unless it is newer than every source (npm test builds just before the tests). */
function ensureBuilt(): void {
  let built = 0;
  try {
    built = statSync(join(ROOT, 'dist/index.js')).mtimeMs;
  } catch {
    // Not built yet.
  }
  if (built >= newestMtime(join(ROOT, 'src')) && built >= statSync(join(ROOT, 'package.json')).mtimeMs)
    return;
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
}

/** Runs an ES module snippet in a fresh node (from the repository, so 'wshub' names this package) and parses the JSON line it prints. */
function runModule(code: string, hideClients: boolean): unknown {
  const args = [...(hideClients ? ['--import', HIDE_CLIENTS] : []), '--input-type=module', '-e', code];
  const result = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

const SPECIFIERS = ['wshub', 'wshub/redis', 'wshub/nats'];
let declarations: Map<string, { values: string[]; types: string[] }> | undefined;

/** Value and type names of the declarations a package specifier resolves to, as a user's TypeScript sees them. */
function declaredNames(specifier: string): { values: string[]; types: string[] } {
  declarations ??= readDeclarations();
  return declarations.get(specifier)!;
}

/** Type-checks one in-memory user module that imports every entry point, and lists what each offers. */
function readDeclarations(): Map<string, { values: string[]; types: string[] }> {
  const file = join(ROOT, 'test/unit/__exports__.ts');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  // Placed next to the tests, so 'wshub' resolves through package.json as in a user's project.
  const source = SPECIFIERS.map((specifier, i) => `export * as entry${i} from '${specifier}';\n`).join('');
  host.readFile = (name) => (name === file ? source : readFile(name));
  host.fileExists = (name) => name === file || fileExists(name);
  host.getSourceFile = (name, language) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language);
  const program = ts.createProgram([file], options, host);
  const errors = ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(errors, [], 'the shipped declarations type-check');
  const checker = program.getTypeChecker();
  const user = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)!)!);
  const result = new Map<string, { values: string[]; types: string[] }>();
  SPECIFIERS.forEach((specifier, i) => {
    const entry = checker.getAliasedSymbol(user.find((s) => s.name === `entry${i}`)!);
    const values: string[] = [];
    const types: string[] = [];
    for (const symbol of checker.getExportsOfModule(entry)) {
      const resolved = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      (resolved.flags & ts.SymbolFlags.Value ? values : types).push(symbol.name);
    }
    result.set(specifier, { values: values.sort(), types: types.sort() });
  });
  return result;
}

describe('package entry points (built dist/, imported by package name)', () => {
  before(ensureBuilt);

  test("import 'wshub' loads neither redis nor nats, and exports exactly the public values", () => {
    // With both clients made uninstallable, the core import must still work…
    const seen = runModule(
      `const core = await import('wshub');
       const failed = [];
       for (const entry of ['wshub/redis', 'wshub/nats']) {
         try { await import(entry); } catch (error) { failed.push(error.code); }
       }
       let deep;
       try { await import('wshub/dist/hub.js'); } catch (error) { deep = error.code; }
       console.log(JSON.stringify({ names: Object.keys(core).sort(), failed, deep }));`,
      true,
    ) as { names: string[]; failed: string[]; deep: string };
    assert.deepEqual(seen.names, [...CORE_VALUES].sort());
    // …while the subpaths, which do need them, fail: the hook is effective.
    assert.deepEqual(seen.failed, ['ERR_MODULE_NOT_FOUND', 'ERR_MODULE_NOT_FOUND']);
    // Internal modules are out of reach: only the entry points in package.json `exports` resolve.
    assert.equal(seen.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  test("the declarations of 'wshub' export exactly the public values and types", () => {
    const names = declaredNames('wshub');
    assert.deepEqual(names.values, [...CORE_VALUES].sort());
    assert.deepEqual(names.types, [...CORE_TYPES].sort());
  });

  for (const [subpath, expected] of Object.entries(SUBPATHS)) {
    test(`wshub/${subpath} exports its transport and the Cluster (the same class as 'wshub')`, () => {
      const seen = runModule(
        `const entry = await import('wshub/${subpath}');
         const core = await import('wshub');
         console.log(JSON.stringify({ names: Object.keys(entry).sort(), same: entry.Cluster === core.Cluster }));`,
        false,
      ) as { names: string[]; same: boolean };
      assert.deepEqual(seen.names, [...expected.values].sort());
      assert.equal(seen.same, true);
      const names = declaredNames(`wshub/${subpath}`);
      assert.deepEqual(names.values, [...expected.values].sort());
      assert.deepEqual(names.types, [...expected.types].sort());
    });
  }

  test('transportFromUrl checks the URL at once and reports a missing client package when started', () => {
    const seen = runModule(
      `const { transportFromUrl, BrokerClientMissingError } = await import('wshub');
       const out = {};
       for (const url of ['redis://127.0.0.1:1', 'nats://127.0.0.1:1']) {
         const transport = transportFromUrl(url);
         try { await transport.start(() => {}, {}); out[url] = 'started'; }
         catch (error) {
           out[url] = { kind: transport.kind, missing: error instanceof BrokerClientMissingError, code: error.code, message: error.message };
         }
       }
       try { transportFromUrl('ftp://127.0.0.1'); } catch (error) { out.ftp = error.code; }
       console.log(JSON.stringify(out));`,
      true,
    ) as Record<string, unknown>;
    assert.deepEqual(seen, {
      'redis://127.0.0.1:1': {
        kind: 'redis',
        missing: true,
        code: 'BROKER_CLIENT_MISSING',
        message: 'a redis:// broker needs the "redis" package, which is not installed (npm install redis)',
      },
      'nats://127.0.0.1:1': {
        kind: 'nats',
        missing: true,
        code: 'BROKER_CLIENT_MISSING',
        message:
          'a nats:// broker needs the "@nats-io/transport-node" package, which is not installed (npm install @nats-io/transport-node)',
      },
      ftp: 'INVALID_BROKER_URL',
    });
  });

  test('wshub serve --broker without the client package exits 1 with one line naming it', () => {
    for (const [url, kind, name] of [
      ['redis://127.0.0.1:6379', 'redis', 'redis'],
      ['nats://127.0.0.1:4222', 'nats', '@nats-io/transport-node'],
    ] as const) {
      const result = spawnSync(
        process.execPath,
        [
          '--import',
          HIDE_CLIENTS,
          ...cliCommand(),
          'serve',
          '--allow-unauthenticated',
          '--port',
          '0',
          '--broker',
          url,
        ],
        { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(result.status, 1, result.stderr);
      assert.equal(
        result.stderr,
        `wshub: a ${kind}:// broker needs the "${name}" package, which is not installed (npm install ${name})\n`,
      );
    }
  });
});
