/**
 * One channel-protocol connection: its state (connecting → connected →
 * closed), the commands it sends, in order, and the connection-level
 * commands (connect, refresh, ping, rpc, send). Channel commands go to the
 * node, which owns channels, history and presence.
 *
 * Commands of one connection are handled one after another: a command
 * that waits (token verification, an application hook) holds the ones
 * behind it, at most `maxPendingCommands` of them.
 */
import { randomUUID } from 'node:crypto';
import { ExpiryTimer } from '../auth/expiry-timer.ts';
import type { UserInfo } from '../auth/user.ts';
import type { Connection } from '../connection/connection.ts';
import { TokenBucket } from '../hub/rate-limit.ts';
import { decodeCommands, errorReplyJson, methodOf, pushJson, replyJson } from './codec.ts';
import type { ChannelNode, Grant } from './node.ts';
import {
  DisconnectException,
  Disconnects,
  ReplyErrorException,
  ReplyErrors,
  Unsubscribes,
  type Command,
  type CommandMethod,
  type Disconnect,
  type Json,
  type ReplyError,
  type SubscribeRequest,
} from './protocol.ts';

type State = 'connecting' | 'connected' | 'closed';

/** A subscription of this connection, as the node keeps it. */
export interface Subscription {
  channel: string;
  /** Whether join/leave pushes go to this subscriber. */
  joinLeave: boolean;
  /** `{"user":…,"client":…,…}`: this subscriber as ClientInfo JSON (publications and join/leave carry it). */
  infoJson: string;
  chanInfo: Json | undefined;
  /** Subscription token expiry; null without one. */
  expiry: ExpiryTimer | null;
  /** Whether the subscription came from the connection token's `channels` claim. */
  serverSide: boolean;
}

/** What an application hook sees of a channel connection. */
export interface ChannelClient {
  /** The client id (a UUID) the connect reply announced. */
  readonly id: string;
  /** The token's `sub` ('' for an anonymous connection). */
  readonly user: string;
  /** The token's `info` claim. */
  readonly info: Json | undefined;
  /** Every claim of the connection token (empty for an anonymous connection). */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly remoteAddress: string | undefined;
}

export class ChannelSession implements ChannelClient {
  readonly id = randomUUID();
  user = '';
  info: Json | undefined = undefined;
  claims: Readonly<Record<string, unknown>> = {};
  state: State = 'connecting';
  readonly subscriptions = new Map<string, Subscription>();
  /** Channels with a subscribe in progress (a 105 for a second one). */
  private readonly subscribing = new Set<string>();
  /** Whether a server ping is waiting for its pong. */
  pongPending = false;
  private readonly rate: TokenBucket | null;
  private readonly staleTimer: NodeJS.Timeout;
  private expiry: ExpiryTimer | null = null;
  /** Commands waiting behind one that waits. */
  private readonly queue: Command[] = [];
  private busy = false;
  /** Runs right after the reply of the command being handled is written (join pushes). */
  private afterReply: (() => void) | null = null;
  /** Replies gathered while a frame is handled (null outside of that). */
  private replies: string[] | null = null;
  /** What waits for the gathered replies to be written. */
  private afterReplies: Array<() => void> = [];

  constructor(
    readonly conn: Connection,
    private readonly node: ChannelNode,
    /** The token of an `Authorization: Bearer` header of the upgrade request (non-browser clients). */
    private readonly headerToken: string | undefined,
  ) {
    const limits = node.limits;
    this.rate = limits.maxCommandsPerSecond > 0 ? new TokenBucket(limits.maxCommandsPerSecond) : null;
    this.staleTimer = setTimeout(() => this.disconnect(Disconnects.STALE), limits.connectTimeout);
    this.staleTimer.unref();
  }

  get remoteAddress(): string | undefined {
    return this.conn.clientAddress ?? this.conn.remoteAddress;
  }

  // ---- receiving ---------------------------------------------------------------

  /** A frame from the client. */
  receive(data: Buffer, binary: boolean): void {
    // Once a disconnect is sent, nothing the client sends takes effect.
    if (this.state === 'closed' || !this.conn.isOpen) return;
    this.pongPending = false;
    // Replies to the commands of this frame answered at once go out together, in one frame.
    this.replies = [];
    try {
      if (binary) throw new DisconnectException(Disconnects.BAD_REQUEST);
      const commands = decodeCommands(data, this.node.limits);
      for (const command of commands) {
        if (this.busy) {
          if (this.queue.length >= this.node.limits.maxPendingCommands)
            throw new DisconnectException(Disconnects.TOO_MANY_REQUESTS);
          this.queue.push(command);
        } else this.run(command);
      }
      this.writeReplies();
    } catch (error) {
      this.writeReplies();
      this.fail(error);
    }
  }

  /** Writes the replies gathered while a frame was handled, then what waits for them (join pushes). */
  private writeReplies(): void {
    const lines = this.replies;
    this.replies = null;
    if (lines !== null && lines.length > 0 && this.state !== 'closed')
      this.conn.sendText(lines.length === 1 ? lines[0]! : lines.join('\n')).catch(ignore);
    const afters = this.afterReplies;
    if (afters.length === 0) return;
    this.afterReplies = [];
    for (const after of afters) after();
  }

  /** Handles one command; while it waits, later commands queue behind it. */
  private run(command: Command): void {
    const result = this.handle(command);
    if (result === undefined) return;
    this.busy = true;
    result.then(
      () => this.next(),
      (error: unknown) => {
        this.fail(error);
        this.next();
      },
    );
  }

  private next(): void {
    this.busy = false;
    while (!this.busy && this.queue.length > 0 && this.state !== 'closed' && this.conn.isOpen) {
      try {
        this.run(this.queue.shift()!);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  /** A failure while handling a command: a disconnect, or an internal error (3004). */
  private fail(error: unknown): void {
    if (error instanceof DisconnectException) this.disconnect(error.disconnect);
    else {
      this.node.reportError(this, error);
      this.disconnect(Disconnects.SERVER_ERROR);
    }
  }

  /** Dispatches a command; returns a promise only when it has to wait. */
  private handle(command: Command): Promise<void> | undefined {
    const method = methodOf(command);
    const id = command.id ?? 0;
    if (method === undefined) return undefined; // `{}`: the answer to a server ping
    if (this.state === 'connecting' && method !== 'connect')
      throw new DisconnectException(Disconnects.BAD_REQUEST);
    if (this.rate !== null && !this.rate.tryTake()) {
      this.node.metrics.commands_limited++;
      if (id > 0) this.replyError(id, ReplyErrors.TOO_MANY_REQUESTS);
      return undefined;
    }
    this.node.metrics.commands++;
    // Every command but send expects a reply, which needs an id.
    if (id === 0 && method !== 'send') throw new DisconnectException(Disconnects.BAD_REQUEST);
    const request = (command as Record<string, unknown>)[method] as Record<string, unknown>;
    let result: Promise<string | undefined> | string | undefined;
    try {
      result = this.execute(method, request);
    } catch (error) {
      return this.answerError(id, error);
    }
    if (!(result instanceof Promise)) {
      if (result !== undefined) this.reply(id, method, result);
      return undefined;
    }
    return this.node.withTimeout(result).then(
      (json) => {
        if (json !== undefined) this.reply(id, method, json);
      },
      (error: unknown) => this.answerError(id, error),
    );
  }

  /** Runs a command; returns its result JSON (undefined: no reply). */
  private execute(
    method: CommandMethod,
    request: Record<string, unknown>,
  ): Promise<string | undefined> | string | undefined {
    const node = this.node;
    switch (method) {
      case 'connect':
        return this.connect(request);
      case 'refresh':
        return this.refresh(request);
      case 'subscribe':
        return this.subscribe(request);
      case 'unsubscribe':
        node.endSubscription(this, channelOf(request), null);
        return '{}';
      case 'publish':
        return node.publishFromClient(this, channelOf(request), request.data as Json | undefined);
      case 'presence':
        return node.presenceFor(this, channelOf(request));
      case 'presence_stats':
        return node.presenceStatsFor(this, channelOf(request));
      case 'history':
        return node.historyFor(this, channelOf(request), request);
      case 'sub_refresh':
        return this.subRefresh(request);
      case 'rpc':
        return node.rpc(this, request);
      case 'send':
        node.send(this, request.data as Json | undefined);
        return undefined;
      case 'ping':
        return '{}';
    }
  }

  /** A command's failure: a reply error keeps the connection; anything else ends it. */
  private answerError(id: number, error: unknown): undefined {
    this.afterReply = null;
    if (error instanceof ReplyErrorException) {
      if (id > 0) this.replyError(id, error.error);
      return undefined;
    }
    throw error;
  }

  // ---- connect and refresh ---------------------------------------------------------

  private connect(request: Record<string, unknown>): Promise<string | undefined> | string | undefined {
    if (this.state !== 'connecting') throw new DisconnectException(Disconnects.BAD_REQUEST);
    const node = this.node;
    if (node.stopped) throw new DisconnectException(Disconnects.SHUTDOWN);
    const given = request.token;
    if (given !== undefined && typeof given !== 'string')
      throw new DisconnectException(Disconnects.BAD_REQUEST);
    const token = given !== undefined && given !== '' ? given : this.headerToken;
    const subs = request.subs as Record<string, SubscribeRequest> | undefined;
    if (subs !== undefined && (typeof subs !== 'object' || subs === null || Array.isArray(subs)))
      throw new DisconnectException(Disconnects.BAD_REQUEST);
    if (token === undefined || token === '') {
      // Without credentials (Centrifuge's rule): a bad request, unless anonymous connections are allowed.
      if (!node.limits.allowAnonymousConnect) throw new DisconnectException(Disconnects.BAD_REQUEST);
      return this.connected(undefined, subs);
    }
    return node.verifyToken(token, 'connection').then((user) => this.connected(user, subs));
  }

  private connected(
    user: UserInfo | undefined,
    subs: Record<string, SubscribeRequest> | undefined,
  ): Promise<string | undefined> | string | undefined {
    if (this.state !== 'connecting') return undefined; // closed while the token was checked
    const claims = user?.claims ?? {};
    this.node.admitUser(userOf(claims));
    this.user = userOf(claims);
    this.info = claims.info as Json | undefined;
    this.claims = claims;
    this.state = 'connected';
    clearTimeout(this.staleTimer);
    const node = this.node;
    node.attach(this);
    const ttl = this.expiresIn(claims);
    const reply = (serverSubs: Map<string, string>): string => {
      this.afterReply = () => {
        for (const channel of serverSubs.keys()) node.subscribeReplied(this, channel);
      };
      return node.connectResultJson(this, ttl, serverSubs);
    };
    const serverSubs = node.subscribeServerSide(this, claims.channels, subs ?? {});
    return serverSubs instanceof Promise ? serverSubs.then(reply) : reply(serverSubs);
  }

  /** Seconds until the token expires (arming the expiry close), or undefined without `exp`. */
  private expiresIn(claims: Record<string, unknown>): number | undefined {
    this.expiry?.cancel();
    this.expiry = null;
    const exp = claims.exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return undefined;
    // Valid through its `exp` second, as the verifier counts it (see armSubscriptionExpiry).
    const deadline = (exp + 1) * 1000 + this.node.limits.expiredCloseDelay;
    this.expiry = new ExpiryTimer(deadline, () => this.disconnect(Disconnects.EXPIRED));
    return Math.max(0, Math.ceil(exp - Date.now() / 1000));
  }

  private refresh(request: Record<string, unknown>): Promise<string | undefined> {
    const token = request.token;
    if (typeof token !== 'string' || token === '') throw new DisconnectException(Disconnects.BAD_REQUEST);
    return this.node.verifyToken(token, 'refresh').then((user) => {
      if (this.state !== 'connected') return undefined;
      if (userOf(user.claims) !== this.user) throw new DisconnectException(Disconnects.INVALID_TOKEN);
      this.claims = user.claims;
      if (user.claims.info !== undefined) this.info = user.claims.info as Json;
      const ttl = this.expiresIn(user.claims);
      return JSON.stringify({
        client: this.id,
        version: this.node.version,
        ...(ttl === undefined ? {} : { expires: true, ttl }),
      });
    });
  }

  // ---- subscriptions -----------------------------------------------------------------

  private subscribe(request: SubscribeRequest): Promise<string | undefined> | string | undefined {
    const channel = channelOf(request as Record<string, unknown>);
    if (this.subscriptions.has(channel) || this.subscribing.has(channel))
      throw new ReplyErrorException(ReplyErrors.ALREADY_SUBSCRIBED);
    const node = this.node;
    const subscribe = (grant: Grant): string | Promise<string> => {
      const json = node.subscribe(this, channel, request, grant, false);
      this.afterReply = () => node.subscribeReplied(this, channel);
      return json;
    };
    const admitted = node.admitSubscribe(this, channel, request);
    if (!(admitted instanceof Promise)) return subscribe(admitted);
    this.subscribing.add(channel);
    return admitted.then(
      (grant) => {
        this.subscribing.delete(channel);
        if (this.state !== 'connected') return undefined;
        return subscribe(grant);
      },
      (error: unknown) => {
        this.subscribing.delete(channel);
        throw error;
      },
    );
  }

  private subRefresh(request: Record<string, unknown>): Promise<string | undefined> {
    const channel = channelOf(request);
    const token = request.token;
    if (typeof token !== 'string' || token === '') throw new DisconnectException(Disconnects.BAD_REQUEST);
    if (!this.subscriptions.has(channel)) throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
    return this.node.verifySubscriptionToken(this, channel, token, 'refresh').then((grant) => {
      const sub = this.subscriptions.get(channel);
      if (sub === undefined) return undefined;
      const ttl = this.node.armSubscriptionExpiry(this, sub, grant.exp);
      return JSON.stringify(ttl === undefined ? {} : { expires: true, ttl });
    });
  }

  /** Ends the subscription from the server side, telling the client why. */
  unsubscribed(channel: string, reason: { code: number; reason: string }): void {
    this.conn.sendText(pushJson(channel, 'unsubscribe', JSON.stringify(reason))).catch(ignore);
  }

  /** The unsubscribe push when a subscription token lapsed without sub_refresh (the SDK resubscribes). */
  subscriptionExpired(channel: string): void {
    this.node.endSubscription(this, channel, Unsubscribes.EXPIRED);
  }

  // ---- writing ------------------------------------------------------------------------

  private reply(id: number, method: string, resultJson: string): void {
    const after = this.afterReply;
    this.afterReply = null;
    if (this.state === 'closed') return;
    const replies = this.replies;
    if (replies !== null) {
      replies.push(replyJson(id, method, resultJson));
      if (after !== null) this.afterReplies.push(after);
      return;
    }
    this.conn.sendText(replyJson(id, method, resultJson)).catch(ignore);
    after?.();
  }

  private replyError(id: number, error: ReplyError): void {
    if (this.state === 'closed') return;
    const line = errorReplyJson(id, error);
    if (this.replies !== null) this.replies.push(line);
    else this.conn.sendText(line).catch(ignore);
  }

  /** Closes the connection with a disconnect code and reason. */
  disconnect(d: Disconnect): void {
    if (this.state === 'closed') return;
    this.conn.close(d.code, d.reason);
  }

  /** Called once when the connection is gone. */
  closed(): void {
    this.state = 'closed';
    clearTimeout(this.staleTimer);
    this.expiry?.cancel();
    this.queue.length = 0;
    this.afterReply = null;
    this.afterReplies = [];
  }
}

/** The user a token names: its `sub` claim, '' (anonymous) when missing or not a string. */
export function userOf(claims: Readonly<Record<string, unknown>>): string {
  return typeof claims.sub === 'string' ? claims.sub : '';
}

/** The `channel` field of a channel command: a non-empty string, or a bad request. */
function channelOf(request: Record<string, unknown>): string {
  const channel = request.channel;
  if (typeof channel !== 'string' || channel === '') throw new DisconnectException(Disconnects.BAD_REQUEST);
  return channel;
}

function ignore(): void {}
