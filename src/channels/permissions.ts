/**
 * Who may do what in a channel, from its options (Centrifugo's rules):
 * a permission "for subscriber" needs a subscription to the channel, "for
 * client" any connection; a connection without a user (anonymous) also
 * needs the "for anonymous" option. A library hook may allow what the
 * options do not.
 */
import type { ChannelOptions } from './options.ts';

/** What a connection is, as the permission rules see it. */
export interface Asker {
  /** '' for an anonymous connection. */
  user: string;
  subscribed: boolean;
}

/** Subscribing without a subscription token. */
export function maySubscribe(options: ChannelOptions, asker: Asker): boolean {
  return options.allowSubscribeForClient && (asker.user !== '' || options.allowSubscribeForAnonymous);
}

/** Publishing from a client connection. */
export function mayPublish(options: ChannelOptions, asker: Asker): boolean {
  if (asker.user === '' && !options.allowPublishForAnonymous) return false;
  return (options.allowPublishForSubscriber && asker.subscribed) || options.allowPublishForClient;
}

/** Reading presence (presence and presence_stats) from a client connection. */
export function mayReadPresence(options: ChannelOptions, asker: Asker): boolean {
  if (asker.user === '' && !options.allowPresenceForAnonymous) return false;
  return (options.allowPresenceForSubscriber && asker.subscribed) || options.allowPresenceForClient;
}

/** Reading history from a client connection. */
export function mayReadHistory(options: ChannelOptions, asker: Asker): boolean {
  if (asker.user === '' && !options.allowHistoryForAnonymous) return false;
  return (options.allowHistoryForSubscriber && asker.subscribed) || options.allowHistoryForClient;
}

/** Whether the channel keeps history (both a size and a lifetime). */
export function hasHistory(options: ChannelOptions): boolean {
  return options.historySize > 0 && options.historyTtl > 0;
}
