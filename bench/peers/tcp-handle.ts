/**
 * Peer `tcp-handle`: the handshake floor below node:net, an experiment and
 * not a way to build a server. It drives Node's TCP handle directly
 * (`process.binding('tcp_wrap')` and `'stream_wrap'`, internal bindings
 * that Node deprecates for any use outside its own code, DEP0111): no
 * net.Socket, no streams, no events. It answers the handshake as bare-net
 * does (with --jwt-secret-file, after the same jose check), answers a chunk
 * that starts with a close frame with a close frame and shuts the socket
 * down, and closes the handle at the client's FIN.
 *
 * Only the handshake scenario uses it: it shows how much of an upgrade's
 * cost on node:net is node:net's own JavaScript layer, which is what a
 * server on Node's public API cannot avoid. A request head must arrive in
 * one read (always so for the suite's generators); anything else is closed.
 * dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/tcp-handle.ts --port 0 [--jwt-secret-file FILE]
 */
import {
  HOST,
  bearerCheck,
  connectionsOnly,
  fail,
  parsePeerArgs,
  peerReady,
  type BearerCheck,
} from './common.ts';
import {
  CLOSE_FRAME,
  HEADER_END,
  requestAuthorization,
  requestKey,
  startsWithClose,
  switchingProtocols,
} from './raw-upgrade.ts';

/** The parts of a libuv TCP handle this peer uses (node's TCPWrap). */
interface TcpHandle {
  onconnection: ((status: number, client: TcpHandle | undefined) => void) | null;
  onread: ((this: TcpHandle, buffer: ArrayBuffer | undefined) => void) | null;
  bind(address: string, port: number): number;
  listen(backlog: number): number;
  getsockname(out: { port?: number }): number;
  readStart(): number;
  readStop(): number;
  writeLatin1String(request: Request, data: string): number;
  writeBuffer(request: Request, data: Buffer): number;
  shutdown(request: Request): number;
  close(): void;
  /** This peer's own state, kept on the handle object. */
  upgraded?: boolean;
  closed?: boolean;
}
/** A write or shutdown request (WriteWrap, ShutdownWrap). */
interface Request {
  handle: TcpHandle;
  oncomplete: () => void;
  async?: boolean;
}
interface Bindings {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number };
  WriteWrap: new () => Request;
  ShutdownWrap: new () => Request;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

const UNAUTHORIZED = 'HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

function binding(name: string): unknown {
  return (process as unknown as { binding(name: string): unknown }).binding(name);
}
const { TCP, constants } = binding('tcp_wrap') as Pick<Bindings, 'TCP' | 'constants'>;
const { WriteWrap, ShutdownWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset } = binding(
  'stream_wrap',
) as Omit<Bindings, 'TCP' | 'constants'>;

const options = parsePeerArgs();
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);
let connections = 0;

function noop(): void {}

function write(handle: TcpHandle, data: string | Buffer): void {
  const request = new WriteWrap();
  request.handle = handle;
  request.oncomplete = noop;
  request.async = false;
  if (typeof data === 'string') handle.writeLatin1String(request, data);
  else handle.writeBuffer(request, data);
}

function shutdown(handle: TcpHandle): void {
  const request = new ShutdownWrap();
  request.handle = handle;
  request.oncomplete = noop;
  handle.shutdown(request);
}

function close(handle: TcpHandle): void {
  if (handle.closed) return;
  handle.closed = true;
  if (handle.upgraded) connections--;
  handle.close();
}

function upgrade(handle: TcpHandle, key: string): void {
  handle.upgraded = true;
  connections++;
  write(handle, switchingProtocols(key));
}

function onread(this: TcpHandle, buffer: ArrayBuffer | undefined): void {
  const read = streamBaseState[kReadBytesOrError]!;
  if (read < 0) return close(this);
  if (read === 0 || buffer === undefined) return;
  const chunk = Buffer.from(buffer, streamBaseState[kArrayBufferOffset], read);
  if (this.upgraded) {
    if (startsWithClose(chunk)) {
      write(this, CLOSE_FRAME);
      shutdown(this);
    }
    return;
  }
  const end = chunk.indexOf(HEADER_END);
  if (end < 0) return close(this);
  const head = chunk.toString('latin1', 0, end);
  const key = requestKey(head);
  if (key === undefined) return close(this);
  if (check === undefined) return upgrade(this, key);
  checkThenUpgrade(this, check, head, key);
}

/** Runs the bearer check with reading stopped, then answers 101 or 401. */
function checkThenUpgrade(handle: TcpHandle, check: BearerCheck, head: string, key: string): void {
  handle.readStop();
  void check(requestAuthorization(head)).then((ok) => {
    if (handle.closed) return;
    // Reading again also lets the client's FIN close the handle after a 401.
    handle.readStart();
    if (!ok) {
      write(handle, UNAUTHORIZED);
      return shutdown(handle);
    }
    upgrade(handle, key);
  });
}

const server = new TCP(constants.SERVER);
if (server.bind(HOST, options.port) !== 0 || server.listen(511) !== 0)
  fail(`tcp-handle: cannot listen on ${HOST}:${options.port}`, 1);
server.onconnection = (status, client) => {
  if (status !== 0 || client === undefined) return;
  client.onread = onread;
  client.readStart();
};
const bound: { port?: number } = {};
server.getsockname(bound);
peerReady(
  bound.port ?? options.port,
  connectionsOnly(() => connections),
);
