// The wshub demo chat page. Plain browser JavaScript, no build step.
//
// Flow: POST /demo/token {name, room, password?} → {token, room}, then open
// the socket on the browser auth path: the token travels as the subprotocol
// "wshub.bearer.<token>" next to "wshub" (never in the URL, where it would
// end up in logs and history). User data is only ever written with
// textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    joinForm: $('join-form'),
    name: $('name'),
    room: $('room'),
    passwordRow: $('password-row'),
    password: $('password'),
    joinError: $('join-error'),
    join: $('join'),
    chat: $('chat'),
    roomTitle: $('room-title'),
    memberCount: $('member-count'),
    memberLabel: $('member-label'),
    leave: $('leave'),
    messages: $('messages'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    status: $('status'),
  };

  const ERRORS = {
    ROOM_PASSWORD_REQUIRED: 'This room is protected. Enter its password to join.',
    ROOM_PASSWORD_INVALID: 'Wrong room password. Try again.',
    INVALID_NAME: 'Choose a name of 1 to 32 characters.',
    INVALID_ROOM: "Room names use letters, digits, '.', '_', ':' or '-' (up to 128).",
  };

  /** Close codes worth a human explanation. */
  const CLOSE_TEXT = {
    1000: 'closed normally',
    1001: 'server going away',
    1006: 'connection lost or refused',
    1008: 'policy violation',
    1009: 'message too big',
    1011: 'server error',
    1012: 'server restarting',
    4001: 'token expired',
  };

  /** The open socket, or null. */
  let socket = null;
  /** The room the password field was asked for, or null while it is hidden. */
  let passwordRoom = null;

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showJoinError(text) {
    ui.joinError.textContent = text;
    ui.joinError.hidden = text === '';
  }

  function setMembers(count) {
    ui.memberCount.textContent = String(count);
    ui.memberLabel.textContent = count === 1 ? 'member' : 'members';
  }

  function formatTime(ms) {
    const date = new Date(typeof ms === 'number' ? ms : Date.now());
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function scrollToEnd() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function addMessage(from, text, at) {
    const item = document.createElement('li');
    item.className = 'message';
    item.dataset.testid = 'message-item';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'from';
    who.dataset.testid = 'message-from';
    who.textContent = from;
    const when = document.createElement('time');
    when.textContent = formatTime(at);
    meta.append(who, when);
    const body = document.createElement('p');
    body.className = 'text';
    body.dataset.testid = 'message-text';
    body.textContent = text;
    item.append(meta, body);
    ui.messages.append(item);
    scrollToEnd();
  }

  function addNotice(text) {
    const item = document.createElement('li');
    item.className = 'notice';
    item.textContent = text;
    ui.messages.append(item);
    scrollToEnd();
  }

  function showChat(visible) {
    ui.chat.hidden = !visible;
    ui.joinForm.hidden = visible;
  }

  async function requestToken(name, room, password) {
    const body = { name, room };
    if (password !== '') body.password = password;
    let response;
    try {
      response = await fetch('/demo/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      return { error: 'NETWORK', message: 'The server cannot be reached.' };
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      // Not JSON: reported below with the status.
    }
    if (response.ok && data && typeof data.token === 'string') return { token: data.token, room: data.room };
    const code = data && data.error && data.error.code;
    const message = (code && ERRORS[code]) || (data && data.error && data.error.message);
    return {
      error: code || 'HTTP_' + response.status,
      message: message || 'Request failed (' + response.status + ').',
    };
  }

  function connect(token, room) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = scheme + '//' + location.host + '/ws?room=' + encodeURIComponent(room);
    setStatus('connecting', 'Connecting to ' + room + '…');
    const ws = new WebSocket(url, ['wshub', 'wshub.bearer.' + token]);
    socket = ws;
    let opened = false;

    ws.onopen = () => {
      opened = true;
      ui.messages.replaceChildren();
      ui.roomTitle.textContent = room;
      setMembers(1);
      showChat(true);
      addNotice('You joined ' + room + '.');
      setStatus('open', 'Connected to ' + room + ' (subprotocol ' + (ws.protocol || 'none') + ')');
      ui.message.focus();
    };

    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data && data.type === 'message' && typeof data.text === 'string') {
        addMessage(String(data.from ?? 'unknown'), data.text, data.at);
      } else if (data && data.type === 'presence' && Number.isInteger(data.count)) {
        setMembers(data.count);
      }
    };

    ws.onclose = (event) => {
      if (socket === ws) socket = null;
      const explained = CLOSE_TEXT[event.code] ? ' – ' + CLOSE_TEXT[event.code] : '';
      const reason = event.reason ? ': ' + event.reason : '';
      const summary = 'code ' + event.code + explained + reason;
      showChat(false);
      ui.join.disabled = false;
      if (opened) {
        setStatus(event.code === 1000 ? 'closed' : 'error', 'Disconnected (' + summary + ')');
      } else {
        showJoinError('Could not connect to the room (' + summary + ').');
        setStatus('error', 'Connection failed (' + summary + ')');
      }
    };
  }

  ui.joinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (socket !== null) return;
    const name = ui.name.value.trim();
    const room = ui.room.value.trim();
    const password = ui.passwordRow.hidden ? '' : ui.password.value;
    showJoinError('');
    ui.join.disabled = true;
    setStatus('connecting', 'Requesting a token…');
    const result = await requestToken(name, room, password);
    if (result.error) {
      ui.join.disabled = false;
      if (result.error === 'ROOM_PASSWORD_REQUIRED' || result.error === 'ROOM_PASSWORD_INVALID') {
        passwordRoom = room;
        ui.passwordRow.hidden = false;
        ui.password.select();
        ui.password.focus();
      }
      showJoinError(result.message);
      setStatus('idle', 'Not connected');
      return;
    }
    connect(result.token, result.room);
  });

  // A different room may have a different password (or none).
  ui.room.addEventListener('input', () => {
    if (ui.room.value.trim() === passwordRoom) return;
    passwordRoom = null;
    ui.passwordRow.hidden = true;
    ui.password.value = '';
    showJoinError('');
  });

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.message.value;
    if (text.trim() === '' || socket === null || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: 'message', text }));
    ui.message.value = '';
    ui.message.focus();
  });

  ui.leave.addEventListener('click', () => {
    if (socket !== null) socket.close(1000, 'left the room');
  });

  const saved = sessionStorage.getItem('wshub-demo-name');
  if (saved) ui.name.value = saved;
  ui.name.addEventListener('change', () => sessionStorage.setItem('wshub-demo-name', ui.name.value.trim()));
})();
