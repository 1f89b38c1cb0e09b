/**
 * Peer `ws-preframed`: ws@8 for the handshake and parsing, but broadcasts
 * bypass ws's sender: the frame is encoded once with `Sender.frame` (one
 * Buffer for header and payload) and that same Buffer is written to every
 * member's TCP socket. Each socket is corked at its first write in an
 * event-loop turn and uncorked once in the check phase (setImmediate), so
 * all frames a socket got during the turn leave in one writev.
 *
 * Slow consumers: nothing bounds the socket buffers, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/ws-preframed.ts --port 0 [--jwt-secret-file FILE]
 */
import * as wsModule from 'ws';
import { WebSocket } from 'ws';
import { serveWsRooms, type RoomSocket } from './ws-rooms.ts';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

/** ws's Sender class is public at runtime but absent from @types/ws. */
const Sender = (wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } })
  .Sender;

const TEXT: FrameOptions = { fin: true, opcode: 0x1, mask: false, readOnly: false, rsv1: false };
const BINARY: FrameOptions = { fin: true, opcode: 0x2, mask: false, readOnly: false, rsv1: false };

/** Sockets corked during this event-loop turn. */
let corked: RoomSocket[] = [];
let flushScheduled = false;

function flush(): void {
  const list = corked;
  corked = [];
  flushScheduled = false;
  for (const member of list) {
    member.corked = false;
    member.tcp?.uncork();
  }
}

function frameOf(data: Buffer, isBinary: boolean): Buffer {
  const parts = Sender.frame(data, isBinary ? BINARY : TEXT);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

await serveWsRooms((room, data, isBinary) => {
  const frame = frameOf(data, isBinary);
  for (const member of room) {
    const tcp = member.tcp;
    if (tcp === undefined || member.readyState !== WebSocket.OPEN) continue;
    if (!member.corked) {
      member.corked = true;
      tcp.cork();
      corked.push(member);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    }
    tcp.write(frame);
  }
});
