/**
 * WshubServer: configuration, the hub, the upgrade pipeline and the admin
 * broadcast endpoint, mounted on a node:http or node:https server.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { boundedServerOptions, reject } from '../upgrade/respond.ts';
import { ADMIN_AUTH_LOG_INTERVAL_MS, AuthFailureLog, handleAdminBroadcast } from '../http/admin-broadcast.ts';
import type { RoomPasswordMetrics } from '../auth/room-password.ts';
import { tokenExpiry, type TokenAuthenticator } from '../auth/token.ts';
import type { ClusterMetrics } from '../broker/cluster.ts';
import {
  connectionOptionsOf,
  deflateSettingsOf,
  hubOptionsOf,
  resolveConfig,
  type ResolvedConfig,
  type WshubConfig,
} from '../config.ts';
import { CloseError, ConfigError } from '../errors.ts';
import type { Connection, ConnectionHandlers, ConnectionOptions } from '../connection/connection.ts';
import { HandshakeGuard, releaseHandshake, type HandshakeMetrics } from '../upgrade/admission.ts';
import { Hub, type HubMetrics, type ShutdownOptions } from '../hub/hub.ts';
import { Opcode } from '../protocol/frame.ts';
import { DeflateEndpoint, type DeflateSettings } from '../protocol/deflate.ts';
import { CloseCode } from '../protocol/close.ts';
import { checkMethod, checkUpgradeHeaders, readHandshake } from '../upgrade/handshake.ts';
import { HttpRejection, refusal, sendRejection, type Rejection } from '../http/rejections.ts';
import {
  checkOrigin,
  handleChannelUpgrade,
  handleUpgrade,
  type ChannelUpgradeConfig,
  type UpgradeConfig,
  type UpgradeMetrics,
} from '../upgrade/pipeline.ts';
import { ChannelNode, type ChannelMetrics } from '../channels/node.ts';
import { Namespaces } from '../channels/options.ts';
import { PROTOBUF_SUBPROTOCOL } from '../channels/protobuf-codec.ts';
import { Disconnects } from '../channels/protocol.ts';
import { WSHUB_VERSION } from '../version.ts';
import { FANOUT_BUCKETS, LatencyHistogram, QUEUE_DELAY_BUCKETS } from '../metrics/latency-histogram.ts';
import { createMetricsRegistry, serveMetrics, type MetricsEndpoint } from '../metrics/prometheus.ts';
import type { UpgradeRequest } from '../upgrade/request-head.ts';
import { interceptUpgrades } from '../upgrade/fast-path.ts';
import { ResourceGuard, type ResourceGuardMetrics } from '../connection/resource-guard.ts';
import { sanitizeForLogging, validateTextMessage, type TextValidationOptions } from '../hub/validation.ts';
import { ExpiryTimer } from '../auth/expiry-timer.ts';
import { AddressLimits, UserConnectionLimit, type ClientLimitMetrics } from '../upgrade/client-limits.ts';
import { PasswordLockout, type PasswordLockoutMetrics } from '../auth/password-lockout.ts';
import { addressKey } from '../http/address.ts';
import { ClientAddressResolver } from '../http/trusted-proxy.ts';
import { buildTokenAuthenticator } from '../auth/token-keys.ts';
import {
  apiAuthFailureLog,
  handleServerApi,
  newServerApiCounters,
  type ServerApiCounters,
  type ServerApiOptions,
} from '../http/server-api.ts';

interface PasswordMetricsSource {
  passwordMetrics(): RoomPasswordMetrics;
}

/** Close code for a connection whose token expired while it was open (CloseCode.TOKEN_EXPIRED). */
export const TOKEN_EXPIRED_CLOSE_CODE = CloseCode.TOKEN_EXPIRED;

/**
 * One structured log event (never contains secrets or message bodies). Text a
 * client or application code chose (a room name, an error message) is passed
 * through sanitizeForLogging, so it cannot forge or flood a log line.
 */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  event: string;
  [field: string]: unknown;
}

export interface ServerMetrics
  extends
    HubMetrics,
    UpgradeMetrics,
    HandshakeMetrics,
    ResourceGuardMetrics,
    ClientLimitMetrics,
    PasswordLockoutMetrics,
    Partial<ClusterMetrics>,
    Partial<ChannelMetrics>,
    Partial<ServerApiCounters>,
    Partial<RoomPasswordMetrics> {
  /** Admin broadcast requests refused for missing or wrong credentials. */
  admin_auth_failures: number;
  /** Forwarding headers from a trusted proxy that could not be read (the proxy's address was used). */
  forwarded_header_malformed: number;
}

export interface Health {
  status: 'healthy' | 'unhealthy';
  stopped: boolean;
  active_connections: number;
  rooms: number;
}

export class WshubServer {
  readonly config: ResolvedConfig;
  readonly hub: Hub;
  /** The channel protocol's node (null when `channelsEnabled` is false): publish, history, presence. */
  readonly channels: ChannelNode | null;
  /** Receives structured log events; replace to route them to your logger. */
  log: (entry: LogEntry) => void = () => {};
  private readonly upgradeMetrics: UpgradeMetrics = {
    security_rejections: 0,
    invalid_ws_keys: 0,
    successful_auths: 0,
    room_auth_busy: 0,
    room_auth_abandoned: 0,
    auth_errors: 0,
  };
  private readonly pipeline: UpgradeConfig;
  private channelPipeline: ChannelUpgradeConfig | null = null;
  /** The server API (Centrifugo's), when channels are on and an API key is set. */
  private serverApi: ServerApiOptions | null = null;
  private readonly textValidation: Partial<TextValidationOptions> | null;
  private readonly expiryTimers = new Map<Connection, ExpiryTimer>();
  private readonly adminAuthFailures = new AuthFailureLog(ADMIN_AUTH_LOG_INTERVAL_MS, (count, remote) =>
    this.log({ level: 'warn', event: 'admin_auth_failed', count, remote }),
  );
  /** Partial-message budget and abuse counters shared by this server's connections. */
  private readonly resources: ResourceGuard;
  /** Deadlines and caps of handshakes in progress. */
  private readonly handshakes: HandshakeGuard;
  /** The duration histograms, once something reads them (recordTimings). */
  private timings: { fanout: LatencyHistogram; queueDelay: LatencyHistogram } | null = null;
  /** The `metricsPath` endpoint, when `metricsEnabled`. */
  private metricsEndpoint: MetricsEndpoint | null = null;
  /** Client addresses behind trusted proxies. */
  private readonly clients: ClientAddressResolver;
  /** Connections and handshake rate per client address. */
  private readonly addressLimits: AddressLimits;
  /** Connections per user, over /ws and channels. */
  private readonly userLimit: UserConnectionLimit;
  /** Room-password lockouts. */
  private readonly passwordLockout: PasswordLockout;
  /** The pipeline for clients the per-client limits skip (no inbound rate limits). */
  private readonly exemptPipeline: UpgradeConfig;
  private exemptChannelPipeline: ChannelUpgradeConfig | null = null;

  /** Validates `config` (merged over the defaults); throws ConfigError, WeakSecretError or SecretReuseError. */
  constructor(config: Partial<WshubConfig> = {}, hub?: Hub) {
    this.config = resolveConfig(config);
    const c = this.config;
    this.hub = hub ?? new Hub(hubOptionsOf(c));
    this.textValidation = c.messageValidation === false ? null : c.messageValidation;
    const tokenAuthenticator: TokenAuthenticator | undefined =
      c.tokenAuthenticator ?? buildTokenAuthenticator(c);
    this.resources = new ResourceGuard(c.maxPartialMessageBytes);
    this.clients = new ClientAddressResolver(c.trustedProxies, c.trustedProxyHeader);
    this.addressLimits = new AddressLimits({
      maxConnsPerIp: c.maxConnsPerIp,
      maxHandshakesPerIp: c.maxHandshakesPerIp,
      exempt: c.limitExempt,
    });
    this.userLimit = new UserConnectionLimit(c.maxConnsPerUser);
    this.passwordLockout = new PasswordLockout({
      maxFailures: c.passwordLockout,
      lockoutMs: c.passwordLockoutMs,
    });
    const connection = { ...connectionOptionsOf(c), guard: this.resources };
    this.pipeline = {
      hub: this.hub,
      connection,
      handlers: this.handlers(),
      allowedOrigins: c.allowedOrigins,
      allowAllOrigins: c.allowAllOrigins,
      allowUnauthenticated: c.allowUnauthenticated,
      allowQueryToken: c.allowQueryToken,
      tokenAuthenticator,
      roomAuthorizer: c.roomAuthorizer,
      selectProtocol: c.selectProtocol,
      metrics: this.upgradeMetrics,
      userLimit: this.userLimit,
      passwordLockout: this.passwordLockout,
      onReject: (request, r) =>
        this.log({
          level: 'info',
          event: 'upgrade_rejected',
          status: r.status,
          code: r.code,
          reason: r.reason ?? r.code,
          detail: r.detail === undefined ? undefined : sanitizeForLogging(r.detail),
          remote: request.socket.remoteAddress,
        }),
      onAuthError: (request, stage, error) =>
        this.log({
          level: 'error',
          event: 'upgrade_auth_error',
          stage,
          ...describeError(error),
          remote: request.socket.remoteAddress,
        }),
      onConnect: (conn, request) => this.connected(conn, request),
      deflate: deflateEndpoint(deflateSettingsOf(c, 'rooms')),
    };
    this.exemptPipeline = { ...this.pipeline, connection: withoutInboundRates(connection) };
    this.channels = c.channelsEnabled ? this.channelNode(tokenAuthenticator) : null;
    if (this.channels !== null && c.apiKey !== undefined) {
      this.serverApi = {
        api: this.channels,
        key: c.apiKey,
        apiPath: c.apiPath,
        maxBodyBytes: c.apiMaxBodyBytes,
        counters: newServerApiCounters(),
        authFailures: apiAuthFailureLog((entry) => this.log(entry)),
        log: (entry) => this.log(entry),
      };
    }
    this.handshakes = new HandshakeGuard({
      timeout: c.handshakeTimeout,
      maxPending: c.maxPendingHandshakes,
      maxPerAddress: c.maxPendingHandshakesPerAddress,
      onLimit: (report) => this.log({ level: 'warn', event: 'handshake_limit', ...report }),
      // Behind a trusted proxy every client shares the proxy's address: the per-client limits,
      // which see the forwarded address, take the place of this cap.
      exempt: (address) => this.clients.isTrustedProxy(address),
    });
    if (c.metricsEnabled) this.metricsEndpoint = { registry: createMetricsRegistry(this), key: c.metricsKey };
  }

  // ---- wiring --------------------------------------------------------------

  /** The channel node and the upgrade configuration of its endpoint. */
  private channelNode(tokenAuthenticator: TokenAuthenticator | undefined): ChannelNode {
    const c = this.config;
    const { historyMaxBytes, historyMaxStreams, historyMetaTtl, presenceMaxEntries, ...limits } =
      c.channelLimits;
    const node = new ChannelNode({
      hub: this.hub,
      namespaces: new Namespaces(c.channels),
      limits,
      tokenAuthenticator,
      subscriptionTokenAuthenticator: c.subscriptionTokenAuthenticator,
      history: { maxBytes: historyMaxBytes, maxStreams: historyMaxStreams, metaTtl: historyMetaTtl },
      presence: { maxEntries: presenceMaxEntries },
      hooks: c.channelHooks ?? {},
      engine: c.channelEngine,
      userLimit: this.userLimit,
      version: WSHUB_VERSION,
      log: (entry) => this.log(entry),
    });
    this.channelPipeline = {
      hub: this.hub,
      allowedOrigins: c.allowedOrigins,
      allowAllOrigins: c.allowAllOrigins,
      metrics: this.upgradeMetrics,
      onReject: this.pipeline.onReject,
      deflate: deflateEndpoint(deflateSettingsOf(c, 'channels')),
      // A channel client that does not read is disconnected (3008), and
      // recovers what it missed when it reconnects: never a silent gap.
      connection: {
        ...this.pipeline.connection,
        sendBehavior: 'close',
        slowConsumerClose: Disconnects.SLOW,
        rateLimitClose: Disconnects.TOO_MANY_REQUESTS,
      },
      handlers: {
        ...node.handlers,
        close: (conn, code, reason) => {
          this.addressLimits.release(conn.clientAddress);
          node.handlers.close?.(conn, code, reason);
        },
      },
      protocols: [PROTOBUF_SUBPROTOCOL],
      accept: (conn, token) => {
        node.accept(conn, token);
      },
    };
    this.exemptChannelPipeline = {
      ...this.channelPipeline,
      connection: withoutInboundRates(this.channelPipeline.connection),
    };
    return node;
  }

  /** The paths whose upgrades this server takes. */
  private upgradePaths(): string[] {
    const c = this.config;
    return this.channels === null ? [c.wsRoutePath] : [c.wsRoutePath, c.channelPath];
  }

  /** The callbacks every connection of this server shares. */
  private handlers(): ConnectionHandlers {
    return {
      message: (conn, data, binary) => this.message(conn, data, binary),
      close: (conn, code, reason) => this.closed(conn, code, reason),
      error: (conn, error) =>
        this.log({
          level: 'debug',
          event: 'connection_error',
          id: conn.id,
          error: sanitizeForLogging(error.message),
        }),
    };
  }

  /** A client message: validate text, then the custom handler or the built-in room fan-out. */
  private message(conn: Connection, data: Buffer, binary: boolean): void | Promise<void> {
    if (!binary && this.textValidation !== null) {
      const verdict = validateTextMessage(data, this.textValidation);
      if (!verdict.ok) throw new CloseError(verdict.closeCode, verdict.reason);
    }
    const onMessage = this.config.onMessage;
    if (onMessage !== undefined) return onMessage(conn, data, binary);
    if (conn.room !== undefined)
      this.hub.broadcastRoom(conn.room, binary ? Opcode.BINARY : Opcode.TEXT, data);
  }

  private connected(conn: Connection, request: UpgradeRequest): void {
    const room = conn.room === undefined ? undefined : sanitizeForLogging(conn.room);
    this.log({ level: 'debug', event: 'connected', id: conn.id, room });
    const exp =
      this.config.closeOnTokenExpiry && conn.user !== undefined ? tokenExpiry(conn.user) : undefined;
    if (exp !== undefined) {
      const timer = new ExpiryTimer(exp, () => conn.close(TOKEN_EXPIRED_CLOSE_CODE, 'token expired'));
      this.expiryTimers.set(conn, timer);
    }
    this.config.onConnect?.(conn, request);
  }

  private closed(conn: Connection, code: number, reason: string): void {
    this.hub.removeConn(conn);
    this.addressLimits.release(conn.clientAddress);
    if (conn.user !== undefined) this.userLimit.release(conn.user.id);
    const timer = this.expiryTimers.get(conn);
    if (timer !== undefined) {
      timer.cancel();
      this.expiryTimers.delete(conn);
    }
    this.log({ level: 'debug', event: 'closed', id: conn.id, code });
    this.config.onClose?.(conn, code, reason);
  }

  // ---- mounting --------------------------------------------------------------

  /**
   * Handles an 'upgrade' event if it targets `wsRoutePath`; returns false
   * (touching nothing) otherwise.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = pathOf(request);
    if (path !== this.config.wsRoutePath && (this.channels === null || path !== this.config.channelPath))
      return false;
    this.upgrade(request, socket, head);
    return true;
  }

  /** Runs the upgrade pipeline for a request already known to target `wsRoutePath`. */
  private upgrade(request: UpgradeRequest, socket: Duplex, head: Buffer): void {
    // The deadline also covers the steps that may wait (token, room authorizer).
    if (!this.handshakes.enterPipeline(socket)) return;
    const client = this.clients.resolve(request.socket.remoteAddress, request.headers);
    const limited = this.addressLimits.admit(client);
    if (limited !== null) {
      this.pipeline.onReject?.(request, limited);
      reject({ socket }, limited);
      return;
    }
    // Until a Connection owns the socket, an error must not crash the process.
    socket.on('error', ignore);
    let counted = true;
    const uncount = (): void => {
      if (counted) this.addressLimits.release(client);
      counted = false;
    };
    const failed = (error: unknown) => {
      uncount();
      this.log({ level: 'error', event: 'upgrade_failed', error: sanitizeForLogging(String(error)) });
      reject({ socket }, refusal(HttpRejection.INTERNAL_ERROR));
    };
    const owned = (conn: Connection | null) => {
      // A refused upgrade gives its slot back now; a connection when it closes.
      if (conn === null) return uncount();
      socket.off('error', ignore);
      this.handshakes.release(socket);
    };
    try {
      const exempt = this.addressLimits.isExempt(client);
      const channel = exempt ? this.exemptChannelPipeline : this.channelPipeline;
      const result =
        channel !== null && pathOf(request) === this.config.channelPath
          ? handleChannelUpgrade(request, socket, head, channel, client)
          : handleUpgrade(
              request,
              socket,
              head,
              exempt ? this.exemptPipeline : this.pipeline,
              client,
              !exempt,
            );
      if (result instanceof Promise) {
        // Bytes a client sends before the 101, while a token or room check
        // waits, stay in the socket until the Connection reads them (the
        // fast path leaves the socket flowing; node:http leaves it paused).
        socket.pause();
        result.then(owned, failed);
      } else owned(result);
    } catch (error) {
      failed(error);
    }
  }

  /**
   * The room-password lockout for a password checked outside an upgrade
   * (an application's own endpoint, such as the demo's token endpoint): the
   * same client address (trusted proxies honoured), the same exemptions and
   * the same table as upgrades. `lockedFor` is the number of seconds the
   * client must wait (0: it may try); `record` counts the outcome.
   */
  roomPasswordAttempt(
    request: IncomingMessage,
    room: string,
  ): { lockedFor: number; record(accepted: boolean): void } {
    const client = this.clients.resolve(request.socket.remoteAddress, request.headers);
    const lockout = this.passwordLockout;
    const key = lockout.enabled && !this.addressLimits.isExempt(client) ? addressKey(client) : undefined;
    return {
      lockedFor: key === undefined ? 0 : lockout.lockedFor(key, room),
      record(accepted) {
        if (!accepted) lockout.fail(key, room);
        else if (key !== undefined) lockout.succeed(key, room);
      },
    };
  }

  /**
   * Handles a plain HTTP request if it targets this server's paths (the
   * admin broadcast endpoint, or a non-upgrade request to `wsRoutePath`);
   * returns false otherwise.
   */
  handleRequest(request: IncomingMessage, response: ServerResponse): boolean {
    const path = pathOf(request);
    const c = this.config;
    if (c.broadcastEnabled && path === c.broadcastPath) {
      handleAdminBroadcast(request, response, {
        hub: this.hub,
        maxBytes: c.broadcastMaxBytes,
        secret: c.broadcastSecret,
        authorizer: c.broadcastAuthorizer,
        onUnauthorized: (r) => this.adminAuthFailures.record(r.socket.remoteAddress),
        onAuthError: (r, error) =>
          this.log({
            level: 'error',
            event: 'admin_auth_error',
            ...describeError(error),
            remote: r.socket.remoteAddress,
          }),
      }).catch((error: unknown) => {
        this.log({ level: 'error', event: 'broadcast_failed', error: sanitizeForLogging(String(error)) });
        sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR));
      });
      return true;
    }
    const metrics = this.metricsEndpoint;
    if (metrics !== null && path === c.metricsPath) {
      serveMetrics(request, response, metrics).catch((error: unknown) => {
        this.log({ level: 'error', event: 'metrics_failed', error: sanitizeForLogging(String(error)) });
        sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR));
      });
      return true;
    }
    const api = this.serverApi;
    if (api !== null && (path === c.apiPath || path.startsWith(`${c.apiPath}/`))) {
      void handleServerApi(request, response, api);
      return true;
    }
    if (path === c.wsRoutePath || (this.channels !== null && path === c.channelPath)) {
      // Not an upgrade (Node routes those to 'upgrade'): answer with the pipeline's rejection.
      const h = readHandshake(request);
      const r: Rejection =
        checkOrigin(h, this.pipeline) ??
        checkMethod(h) ??
        checkUpgradeHeaders(h) ??
        refusal(HttpRejection.UPGRADE_REQUIRED);
      this.pipeline.onReject?.(request, r);
      reject({ response }, r);
      return true;
    }
    return false;
  }

  /**
   * Mounts on an http(s) server: upgrades to `wsRoutePath`, the admin
   * broadcast endpoint, and a 404 for upgrades to other paths when no other
   * upgrade handler exists. Existing request listeners keep serving every
   * other request. Throws ConfigError when attached twice.
   */
  attach(server: Server): this {
    mountOn(server).add(this);
    return this;
  }

  /**
   * Creates an http server (https when `tls` is given) with the handshake
   * bounds applied, attached to this hub. `fallback` serves other requests.
   */
  createServer(
    fallback?: (request: IncomingMessage, response: ServerResponse) => void,
    tls?: HttpsOptions,
  ): Server {
    const bounds = boundedServerOptions(this.config.handshakeTimeout, this.config.maxHeaderSize);
    // node:tls would otherwise allow 120 s for the TLS handshake alone.
    const server = tls
      ? createHttpsServer({ ...bounds, handshakeTimeout: this.config.handshakeTimeout, ...tls })
      : createHttpServer(bounds);
    if (fallback !== undefined) server.on('request', fallback);
    this.attach(server);
    if (!tls) {
      interceptUpgrades(server, {
        paths: this.upgradePaths(),
        maxHeaderSize: this.config.maxHeaderSize,
        upgrade: (request, socket, head) => this.upgrade(request, socket, head),
      });
    }
    this.handshakes.protect(server, tls !== undefined);
    return server;
  }

  // ---- state -----------------------------------------------------------------

  metrics(): ServerMetrics {
    // RoomPasswords and SecureRoomAuth count their hashing; custom authorizers may not.
    const passwords = this.config.roomAuthorizer as Partial<PasswordMetricsSource> | undefined;
    return {
      ...this.hub.metrics(),
      ...this.upgradeMetrics,
      ...this.handshakes.metrics(),
      ...this.resources.metrics(),
      admin_auth_failures: this.adminAuthFailures.total,
      ...this.addressLimits.counters,
      ip_addresses_tracked: this.addressLimits.trackedAddresses,
      user_connections_refused: this.userLimit.refused,
      ...this.passwordLockout.counters,
      forwarded_header_malformed: this.clients.malformed,
      ...this.hub.clusterMetrics(),
      ...this.channels?.channelMetrics(),
      ...this.serverApi?.counters,
      ...(typeof passwords?.passwordMetrics === 'function' ? passwords.passwordMetrics() : {}),
    };
  }

  /**
   * Starts recording the broadcast fan-out time and the send-queue delay of
   * connections opened from now on, and returns the two histograms (the same
   * ones on every call). registerWshubMetrics calls it; until then the hot
   * path reads no clock for them.
   */
  recordTimings(): { fanout: LatencyHistogram; queueDelay: LatencyHistogram } {
    if (this.timings === null) {
      this.timings = {
        fanout: new LatencyHistogram(FANOUT_BUCKETS),
        queueDelay: new LatencyHistogram(QUEUE_DELAY_BUCKETS),
      };
      this.hub.fanoutTimer = this.timings.fanout;
      this.resources.queueDelay = this.timings.queueDelay;
    }
    return this.timings;
  }

  /**
   * Connects the scale-out cluster and the channel engine, if configured
   * (rejects when the broker or the engine's Redis cannot be reached).
   * Without either there is nothing to wait for.
   */
  async start(): Promise<void> {
    await Promise.all([this.hub.start(), this.channels?.start()]);
  }

  health(): Health {
    const stopped = this.hub.isStopped;
    return {
      status: stopped ? 'unhealthy' : 'healthy',
      stopped,
      active_connections: this.hub.getActiveConnectionCount() + (this.channels?.connectionCount ?? 0),
      rooms: this.hub.getRooms().length,
    };
  }

  /** Stops the hub (no new joins or broadcasts); connections stay open. */
  stop(): Promise<void> {
    return this.hub.stop();
  }

  /** Graceful shutdown (see Hub.shutdown). Safe to call twice. */
  async shutdown(options: ShutdownOptions = {}): Promise<void> {
    await Promise.all([
      this.hub.shutdown(options),
      this.channels?.shutdown(options.timeout ?? this.config.closeTimeout),
    ]);
    this.adminAuthFailures.flush();
    this.serverApi?.authFailures?.flush();
    for (const timer of this.expiryTimers.values()) timer.cancel();
    this.expiryTimers.clear();
  }
}

/**
 * Everything attached to one http server: a single 'upgrade' and a single
 * 'request' listener try each WshubServer in turn, so several hubs can share
 * a server, and an upgrade nobody serves still gets its 404.
 */
class Mount {
  private readonly hubs: WshubServer[] = [];

  constructor(private readonly server: Server) {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      for (const hub of this.hubs) if (hub.handleUpgrade(request, socket, head)) return;
      // Another upgrade handler (registered by the application) may serve this path.
      if (server.listenerCount('upgrade') === 1) {
        reject({ socket }, refusal(HttpRejection.NOT_FOUND, 'no WebSocket endpoint at this path'));
      } else releaseHandshake(socket);
    });
    const previous = server.listeners('request') as Array<
      (req: IncomingMessage, res: ServerResponse) => void
    >;
    server.removeAllListeners('request');
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      for (const hub of this.hubs) if (hub.handleRequest(request, response)) return;
      if (previous.length === 0) {
        sendRejection(response, refusal(HttpRejection.NOT_FOUND));
        return;
      }
      for (const listener of previous) listener.call(server, request, response);
    });
  }

  /** Adds a hub; throws ConfigError when it is already here or one of its paths is taken. */
  add(hub: WshubServer): void {
    if (this.hubs.includes(hub))
      throw new ConfigError('server', 'this WshubServer is already attached to that server');
    const taken = new Set(this.hubs.flatMap(paths));
    for (const path of paths(hub)) {
      if (taken.has(path))
        throw new ConfigError('wsRoutePath', `path ${path} is already served on that server`);
    }
    this.hubs.push(hub);
  }
}

function paths(hub: WshubServer): string[] {
  const c = hub.config;
  const out = [c.wsRoutePath];
  if (c.broadcastEnabled) out.push(c.broadcastPath);
  if (c.channelsEnabled) out.push(c.channelPath);
  if (c.channelsEnabled && c.apiKey !== undefined) out.push(c.apiPath);
  if (c.metricsEnabled) out.push(c.metricsPath);
  return out;
}

const mounts = new WeakMap<Server, Mount>();

function mountOn(server: Server): Mount {
  let mount = mounts.get(server);
  if (mount === undefined) mounts.set(server, (mount = new Mount(server)));
  return mount;
}

/** Creates a WshubServer (the seed's `websocket.New`). */
export function createWshub(config: Partial<WshubConfig> = {}): WshubServer {
  return new WshubServer(config);
}

function pathOf(request: Pick<IncomingMessage, 'url'>): string {
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function ignore(): void {}

/** The permessage-deflate side of an endpoint, or null when deflate is off there. */
function deflateEndpoint(settings: DeflateSettings | null): DeflateEndpoint | null {
  return settings === null ? null : new DeflateEndpoint(settings);
}

/** Connection options without inbound rate limits (for exempt clients). */
function withoutInboundRates(options: ConnectionOptions): ConnectionOptions {
  return { ...options, maxMessagesPerSec: 0, maxBytesPerSec: 0 };
}

/** Longest error message a log line carries; user code's messages are not ours to bound. */
const MAX_LOGGED_ERROR_CHARS = 200;

/**
 * An error thrown by user auth code, as a log field: its name and message
 * only (no stack, no request), so the token and password never go in.
 */
function describeError(error: unknown): { error: string } {
  return { error: String(error).slice(0, MAX_LOGGED_ERROR_CHARS) };
}
