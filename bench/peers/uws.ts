/**
 * Peer `uws`: uWebSockets.js (npm @trufflesuite/uws-js-unofficial) with its
 * topics: `open` subscribes the socket to its room, `message` calls
 * `app.publish(room, message, isBinary)`. The app-level publish reaches
 * every subscriber, the sender included (only `ws.publish` skips the
 * sender), so no extra send is needed.
 *
 * The package falls back to a ws-based JavaScript shim when its native addon
 * does not load. Numbers from the shim would be meaningless, so this peer
 * checks that the module it got is the exports of the `.node` addon in
 * require's cache, prints that file on stderr, and exits with code 3
 * otherwise.
 *
 * Backpressure: maxBackpressure at its default (64 KiB), closeOnBackpressureLimit
 * off; publish reports nothing per recipient, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/uws.ts --port 0 [--jwt-secret-file FILE] [--deflate]
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as uWS from '@trufflesuite/uws-js-unofficial';
import {
  HOST,
  WS_PATH,
  bearerCheck,
  connectionsOnly,
  fail,
  parsePeerArgs,
  peerReady,
  DEFAULT_ROOM,
} from './common.ts';

/** Exit code when the native addon is not in use. */
const NOT_NATIVE_EXIT_CODE = 3;
const PACKAGE = '@trufflesuite/uws-js-unofficial';

/**
 * Loads the package and returns it with the path of the native addon it
 * came from; exits with code 3 when it is the JavaScript fallback.
 */
function loadNative(): { uws: typeof uWS; addon: string } {
  const require = createRequire(import.meta.url);
  const main = require.resolve(PACKAGE);
  // The package's main picks this file by platform, arch and Node ABI, and
  // falls back to ../dist/index.js when requiring it throws.
  const addon = join(
    dirname(main),
    '..',
    'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
  );
  const uws = require(PACKAGE) as typeof uWS;
  const cached = require.cache[addon];
  if (cached === undefined || cached.exports !== uws) {
    fail(
      `uws: the native addon ${addon} is not in use (${PACKAGE} fell back to its JavaScript shim); ` +
        'refusing to run',
      NOT_NATIVE_EXIT_CODE,
    );
  }
  return { uws, addon };
}

interface UserData {
  room: string;
}

const options = parsePeerArgs();
const { uws, addon } = loadNative();
process.stderr.write(`uws: native addon ${addon}\n`);
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);
let connections = 0;

const app = uws.App();

/** Reads what the upgrade needs from the request, which is only valid during the callback. */
function upgradeSync(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
  res.upgrade<UserData>(
    { room: req.getQuery('room') || DEFAULT_ROOM },
    req.getHeader('sec-websocket-key'),
    req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'),
    context,
  );
}

function upgradeWithJwt(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
  const verify = check as NonNullable<typeof check>;
  const room = req.getQuery('room') || DEFAULT_ROOM;
  const key = req.getHeader('sec-websocket-key');
  const protocol = req.getHeader('sec-websocket-protocol');
  const extensions = req.getHeader('sec-websocket-extensions');
  const authorization = req.getHeader('authorization');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  void verify(authorization === '' ? undefined : authorization).then((ok) => {
    if (aborted) return;
    res.cork(() => {
      if (ok) res.upgrade<UserData>({ room }, key, protocol, extensions, context);
      else res.writeStatus('401 Unauthorized').end(undefined, true);
    });
  });
}

app.ws<UserData>(WS_PATH, {
  compression: options.deflate ? uws.SHARED_COMPRESSOR : uws.DISABLED,
  maxPayloadLength: 16 * 1024 * 1024,
  closeOnBackpressureLimit: 0,
  upgrade: check === undefined ? upgradeSync : upgradeWithJwt,
  open: (ws) => {
    connections++;
    ws.subscribe(ws.getUserData().room);
  },
  message: (ws, message, isBinary) => {
    app.publish(ws.getUserData().room, message, isBinary, options.deflate);
  },
  close: () => {
    connections--;
  },
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end(undefined, true);
});
app.listen(HOST, options.port, (listenSocket) => {
  if (listenSocket === false) fail(`uws: cannot listen on ${HOST}:${options.port}`);
  peerReady(
    uws.us_socket_local_port(listenSocket),
    connectionsOnly(() => connections),
  );
});
