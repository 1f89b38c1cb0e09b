/**
 * Every counter and gauge wshub keeps, under its Prometheus name: the
 * `ServerMetrics` field it is read from, its type and its meaning. The one
 * list behind /metrics and the metrics reference in docs/OPERATIONS.md
 * (test/unit/metrics checks that the two agree).
 */
import type { ServerMetrics } from '../server/server.ts';

/** One exported metric read from a ServerMetrics field at scrape time. */
export interface MetricSpec {
  /** Prometheus name (`wshub_…`, counters end in `_total`). */
  name: string;
  type: 'counter' | 'gauge';
  /** The ServerMetrics field it reads. */
  field: keyof ServerMetrics;
  help: string;
}

const counter = (name: string, field: keyof ServerMetrics, help: string): MetricSpec => ({
  name: `wshub_${name}_total`,
  type: 'counter',
  field,
  help,
});
const gauge = (name: string, field: keyof ServerMetrics, help: string): MetricSpec => ({
  name: `wshub_${name}`,
  type: 'gauge',
  field,
  help,
});

/** The counters and gauges, grouped as docs/OPERATIONS.md lists them. */
export const METRIC_SPECS: readonly MetricSpec[] = [
  // -- hub --
  gauge('connections', 'active_connections', 'Open room-protocol connections.'),
  gauge('rooms', 'rooms', 'Rooms with at least one member (on any node when scaled out).'),
  gauge('room_registrations', 'room_registrations', 'Room memberships held by this hub.'),
  gauge('max_room_registrations', 'max_room_registrations', 'Configured cap on room memberships (0 = none).'),
  gauge('max_room_connections', 'max_room_connections', 'Configured cap on connections per room (0 = none).'),
  counter('joins_accepted', 'accepted_total', 'Room joins accepted.'),
  counter('joins_rejected', 'rejected_total', 'Room joins refused (capacity, rate, invalid room, stopped).'),
  counter(
    'broadcast_deliveries_attempted',
    'broadcast_attempted',
    'Broadcast copies addressed to a recipient.',
  ),
  counter('broadcast_deliveries_enqueued', 'broadcast_enqueued', 'Broadcast copies written or queued.'),
  counter(
    'broadcast_deliveries_skipped',
    'broadcast_skipped',
    'Broadcast copies skipped: recipient closing.',
  ),
  counter('broadcast_deliveries_dropped', 'broadcast_dropped', 'Broadcast copies lost to a full send queue.'),
  gauge('broadcast_jobs_waiting', 'broadcast_jobs_waiting', 'Broadcasts waiting for blocked recipients.'),
  // -- upgrades and handshakes --
  counter(
    'upgrade_security_rejections',
    'security_rejections',
    'Upgrades refused by origin, auth or room checks.',
  ),
  counter('upgrade_invalid_keys', 'invalid_ws_keys', 'Upgrades refused for a malformed Sec-WebSocket-Key.'),
  counter(
    'upgrade_auth_successes',
    'successful_auths',
    'Upgrades whose token or room password was accepted.',
  ),
  counter(
    'upgrade_room_auth_busy',
    'room_auth_busy',
    'Upgrades refused with 503: room authorizer overloaded.',
  ),
  counter(
    'upgrade_room_auth_abandoned',
    'room_auth_abandoned',
    'Room authorizations whose client left first.',
  ),
  counter('upgrade_auth_errors', 'auth_errors', 'Upgrades refused with 503: the authenticator failed.'),
  gauge('handshakes_pending', 'handshakes_pending', 'Handshakes in progress.'),
  counter('handshake_timeouts', 'handshake_timeouts', 'Handshakes cut off at the handshake deadline.'),
  counter(
    'handshakes_refused_per_address',
    'handshakes_refused_per_address',
    'Handshakes refused with 429: too many pending from one address.',
  ),
  counter('handshakes_evicted', 'handshakes_evicted', 'Pending handshakes dropped to admit a newcomer.'),
  counter(
    'admin_auth_failures',
    'admin_auth_failures',
    'Admin broadcast requests with missing or wrong credentials.',
  ),
  // -- connection resources --
  gauge('partial_message_bytes', 'partial_message_bytes', 'Bytes held by incoming messages still arriving.'),
  counter(
    'partial_message_budget_closes',
    'partial_message_budget_closes',
    'Connections closed (1013): the partial-message budget was spent.',
  ),
  counter(
    'fragment_limit_closes',
    'fragment_limit_closes',
    'Connections closed (1009): too many frames in one message.',
  ),
  counter('ping_flood_closes', 'ping_flood_closes', 'Connections closed (1008): pings too fast.'),
  counter(
    'outbound_overflow_closes',
    'outbound_overflow_closes',
    'Connections destroyed: outbound bytes past maxOutboundBytes.',
  ),
  // -- channels (present when the channel protocol is on) --
  gauge('channel_connections', 'channel_connections', 'Open channel-protocol connections.'),
  gauge('channel_subscriptions', 'channel_subscriptions', 'Channel subscriptions held by this node.'),
  gauge('channels', 'channels', 'Channels with at least one subscriber on this node.'),
  counter('channel_commands', 'commands', 'Channel protocol commands received.'),
  counter(
    'channel_commands_limited',
    'commands_limited',
    'Channel commands refused by the per-connection rate.',
  ),
  counter('channel_publications', 'channel_publications', 'Publications made to channels.'),
  counter('channel_pushes_queued', 'channel_pushes_queued', 'Pushes queued to channel subscribers.'),
  counter(
    'channel_pushes_dropped',
    'channel_pushes_dropped',
    'Pushes not queued (subscriber closing or full).',
  ),
  counter(
    'channel_binary_skipped',
    'channel_binary_skipped',
    'Publications without a JSON form, not delivered to JSON subscribers.',
  ),
  counter('channel_text_wrapped', 'channel_text_wrapped', 'Non-JSON room text delivered as a JSON string.'),
  counter('channel_disconnects', 'channel_disconnects', 'Channel connections disconnected by the server.'),
  gauge('history_streams', 'history_streams', 'Channel history streams held.'),
  gauge('history_publications', 'history_publications', 'Publications held in channel history.'),
  gauge('history_bytes', 'history_bytes', 'Bytes held in channel history.'),
  counter('history_trimmed', 'history_trimmed', 'Publications removed from history by its bounds.'),
  gauge('presence_entries', 'presence_entries', 'Presence entries held.'),
  // -- channel engine: Redis (absent with the in-memory engine) --
  gauge(
    'redis_state_connected',
    'redis_state_connected',
    "1 while the Redis channel engine's command connection is up.",
  ),
  counter(
    'redis_state_history_appends',
    'redis_state_history_appends',
    'Publications stored in Redis by the publish script.',
  ),
  counter(
    'redis_state_history_reads',
    'redis_state_history_reads',
    'Redis stream reads (position, history, recovery).',
  ),
  counter(
    'redis_state_presence_ops',
    'redis_state_presence_ops',
    'Redis presence adds, refreshes, removals and reads.',
  ),
  counter('redis_state_errors', 'redis_state_errors', 'Failed Redis engine commands (timeouts included).'),
  counter(
    'redis_state_timeouts',
    'redis_state_timeouts',
    'Redis engine commands not answered within the command timeout.',
  ),
  counter(
    'redis_state_refused',
    'redis_state_refused',
    'Redis engine commands refused: too many outstanding.',
  ),
  gauge('redis_state_pending', 'redis_state_pending', 'Redis engine commands outstanding.'),
  counter('redis_state_received', 'redis_state_received', 'Redis engine pub/sub messages received.'),
  counter(
    'redis_state_malformed',
    'redis_state_malformed',
    'Redis engine messages or entries that did not decode.',
  ),
  counter('redis_state_resubscribes', 'redis_state_resubscribes', 'Redis engine pub/sub reconnections.'),
  gauge('redis_state_listened', 'redis_state_listened', 'Channels this node listens to in Redis.'),
  counter(
    'redis_state_publish_failed',
    'redis_state_publish_failed',
    'Publications refused to their publisher: not stored in Redis.',
  ),
  counter(
    'redis_state_gaps',
    'redis_state_gaps',
    'Publications missed on Redis pub/sub (offset gaps, broken merges).',
  ),
  counter(
    'redis_state_recovery_overflows',
    'redis_state_recovery_overflows',
    'Subscribes whose recovery buffer overflowed.',
  ),
  counter(
    'redis_state_forced_resubscribes',
    'redis_state_forced_resubscribes',
    'Subscriptions ended with 2500 so that the client recovers.',
  ),
  // -- server API (present when an API key is set) --
  counter('api_requests', 'api_requests', 'Server API requests answered.'),
  counter('api_errors', 'api_errors', 'Server API requests answered with an error (not 401).'),
  counter('api_auth_failures', 'api_auth_failures', 'Server API requests with a missing or wrong key (401).'),
  // -- room passwords (present with password-protected rooms) --
  counter('room_password_hashes', 'room_password_hashes', 'Room password hashes computed to check joins.'),
  counter('room_password_skipped', 'room_password_skipped', 'Room password checks dropped: client gone.'),
  counter('room_password_busy', 'room_password_busy', 'Room password checks refused: too many waiting.'),
  gauge('room_password_queued', 'room_password_queued', 'Room password checks waiting for a hashing slot.'),
  // -- scale-out (present with a cluster) --
  gauge('cluster_nodes', 'cluster_nodes', 'Nodes this node currently sees in the cluster.'),
  gauge('broker_connected', 'broker_connected', '1 while the broker connection is up, else 0.'),
  counter('broker_reconnects', 'broker_reconnects', 'Broker reconnections.'),
  counter('broker_published', 'broker_published', 'Messages published to the broker.'),
  counter('broker_received', 'broker_received', 'Messages received from the broker.'),
  counter('broker_errors', 'broker_errors', 'Broker errors.'),
  counter('broker_lost', 'broker_lost', 'Messages lost: failed or dropped publishes plus sequence gaps.'),
  counter('broker_publish_failed', 'broker_publish_failed', 'Publishes the broker refused or that failed.'),
  counter(
    'broker_publish_dropped',
    'broker_publish_dropped',
    'Publishes dropped: in-flight bytes bound reached.',
  ),
  counter('broker_gaps', 'broker_gaps', 'Sequence gaps seen in other nodes’ messages.'),
  gauge('broker_in_flight', 'broker_in_flight', 'Publishes waiting for the broker.'),
  gauge('broker_in_flight_bytes', 'broker_in_flight_bytes', 'Message bytes waiting for the broker.'),
  gauge('broker_sequences_out', 'broker_sequences_out', 'Channels this node numbers its publishes on.'),
  gauge('broker_sequences_in', 'broker_sequences_in', '(origin, channel) pairs checked for gaps.'),
  counter('broker_presence_refused', 'broker_presence_refused', 'Presence announcements refused whole.'),
  counter(
    'broker_presence_rooms_refused',
    'broker_presence_rooms_refused',
    'Room entries skipped in accepted announcements.',
  ),
  gauge(
    'broker_presence_rooms_omitted',
    'broker_presence_rooms_omitted',
    'Rooms of this node left out of its last announcement.',
  ),
  gauge(
    'broker_presence_rooms',
    'broker_presence_rooms',
    'Room entries kept from other nodes’ announcements.',
  ),
];

/** A duration histogram wshub records (see LatencyHistogram). */
export interface HistogramSpec {
  name: string;
  help: string;
}

/** Broadcast fan-out time: one loop over a broadcast's local recipients. */
export const FANOUT_HISTOGRAM: HistogramSpec = {
  name: 'wshub_broadcast_fanout_seconds',
  help: 'Time to hand one broadcast (or one room batch) to every local recipient.',
};

/** Send-queue delay: from entering a connection's queue to reaching its socket. */
export const QUEUE_DELAY_HISTOGRAM: HistogramSpec = {
  name: 'wshub_send_queue_delay_seconds',
  help: 'Time a queued message waited in its connection send queue before reaching the socket.',
};
