/**
 * Peer `ws-naive`: ws@8 (bufferutil and utf-8-validate loaded by ws itself),
 * rooms as Sets, and every message re-sent with `client.send` to each member
 * of the sender's room, sender included. ws frames the message once per
 * recipient; that per-recipient cost is what this peer stands for.
 *
 * Slow consumers: ws buffers without bound, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/ws-naive.ts --port 0 [--jwt-secret-file FILE]
 */
import { serveWsRooms } from './ws-rooms.ts';

await serveWsRooms((room, data, isBinary) => {
  const sendOptions = { binary: isBinary };
  for (const member of room) member.send(data, sendOptions);
});
