/** The Node WebSocket client: `dial()` and pull-style message receiving. */
export { dial, DialError, DEFAULT_DIAL_TIMEOUT, type DialOptions } from './dial.ts';
export {
  MessageQueue,
  messageQueue,
  ReceiveTimeoutError,
  DEFAULT_RECEIVE_TIMEOUT,
  type ReceivedMessage,
} from './messages.ts';
