// The wshub demo chat: channels over the Centrifuge protocol with the
// official `centrifuge` SDK (served by wshub at /centrifuge.js, which defines
// the global `Centrifuge`). Plain browser JavaScript, no build step.
//
// - Tokens: the SDK asks `getToken` for a connection token, at connect and
//   again before it expires; POST /demo/token answers (a refresh keeps the
//   user by sending the previous token).
// - Channels live in the `chat` namespace: history on join, presence with
//   join/leave, publishing by subscribers, and recovery after a reconnect.
// - "Simulate network drop" closes the SDK's WebSocket and refuses new ones
//   until clicked again; the SDK reconnects and recovers what was missed.
//
// User data is only ever written with textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    joinForm: $('join-form'),
    name: $('name'),
    joinError: $('join-error'),
    join: $('join'),
    chat: $('chat'),
    channelList: $('channel-list'),
    newChannelForm: $('new-channel-form'),
    newChannel: $('new-channel'),
    channelTitle: $('channel-title'),
    leave: $('leave'),
    messageLists: $('message-lists'),
    peopleLists: $('people-lists'),
    peopleCount: $('people-count'),
    sendForm: $('send-form'),
    message: $('message'),
    status: $('status'),
    tokenInfo: $('token-info'),
    network: $('network'),
  };

  const NAMESPACE = 'chat:';
  const DEFAULT_CHANNELS = ['chat:general', 'chat:random'];
  const CHANNEL_PART = /^[A-Za-z0-9._-]{1,64}$/;
  const HISTORY_LIMIT = 50;
  const MAX_TEXT_CHARS = 2000;
  /** Messages and notices kept on screen per channel; older ones are removed. */
  const MAX_SHOWN = 500;
  /** Channels one page may have open (the server allows more). */
  const MAX_CHANNELS = 20;

  /** The SDK client, or null before connecting. */
  let client = null;
  let userName = '';
  /** The latest connection token, sent back on refresh so the user stays the same. */
  let currentToken = '';
  let tokensIssued = 0;
  /** channel name → its state (subscription, elements, members, position). */
  const channels = new Map();
  let active = null;

  // ---- simulated network -------------------------------------------------------------

  let offline = false;
  let liveSocket = null;

  /** A socket that fails like an unreachable network: an error, then close 1006. */
  class OfflineSocket {
    constructor() {
      this.readyState = WebSocket.CLOSED;
      setTimeout(() => {
        if (this.onerror) this.onerror(new Event('error'));
        if (this.onclose) this.onclose({ code: 1006, reason: '', wasClean: false });
      }, 0);
    }
    send() {
      throw new Error('offline');
    }
    close() {}
  }

  /** The WebSocket the SDK uses: the browser's, unless the network drop is on. */
  function DemoSocket(url, protocols) {
    if (offline) return new OfflineSocket();
    const socket = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    liveSocket = socket;
    return socket;
  }

  function setOffline(value) {
    offline = value;
    ui.network.setAttribute('aria-pressed', String(value));
    ui.network.textContent = value ? 'Restore network' : 'Simulate network drop';
    if (value && liveSocket !== null && liveSocket.readyState <= WebSocket.OPEN) liveSocket.close();
    if (value)
      setStatus('offline', 'Network dropped (simulated): messages sent meanwhile are recovered later');
    else setStatus('connecting', 'Network restored: reconnecting…');
  }

  // ---- small helpers ---------------------------------------------------------------------

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function timeNow() {
    return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function showJoinError(text) {
    ui.joinError.textContent = text;
    ui.joinError.hidden = text === '';
  }

  /** The sender's name: from the server-stamped connection info, never from the message. */
  function senderOf(info) {
    const name = info && info.connInfo && info.connInfo.name;
    return typeof name === 'string' && name !== '' ? name : 'anonymous';
  }

  // ---- tokens ------------------------------------------------------------------------------

  /** The SDK's getToken: a fresh connection token from the demo's token endpoint. */
  async function getToken() {
    const body = { name: userName };
    if (currentToken !== '') body.refresh = currentToken;
    const response = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      // Reported below with the status.
    }
    if (response.ok && data && typeof data.token === 'string') {
      currentToken = data.token;
      tokensIssued++;
      ui.tokenInfo.dataset.count = String(tokensIssued);
      ui.tokenInfo.textContent =
        tokensIssued === 1 ? 'token issued ' + timeNow() : 'token refreshed ' + timeNow();
      return data.token;
    }
    const message =
      (data && data.error && data.error.message) || 'token request failed (' + response.status + ')';
    // A refused request will not get better by retrying: the SDK stops.
    if (response.status === 400 || response.status === 403) throw new Centrifuge.UnauthorizedError(message);
    throw new Error(message);
  }

  // ---- channels -------------------------------------------------------------------------------

  /** Appends an item to a channel's list, dropping the oldest past MAX_SHOWN. */
  function append(ch, item) {
    ch.list.append(item);
    while (ch.list.childElementCount > MAX_SHOWN) ch.list.firstElementChild.remove();
    ch.list.scrollTop = ch.list.scrollHeight;
  }

  function addNotice(ch, text, kind) {
    const item = el('li', 'notice', text);
    item.dataset.testid = 'notice';
    if (kind) item.dataset.kind = kind;
    append(ch, item);
  }

  /** Shows a publication, once: the stream offset tells a duplicate apart. */
  function showPublication(ch, ctx) {
    if (typeof ctx.offset === 'number' && ctx.offset > 0) {
      if (ctx.offset <= ch.lastOffset) return;
      ch.lastOffset = ctx.offset;
    }
    const data = ctx.data;
    if (data === null || typeof data !== 'object' || typeof data.text !== 'string') return;
    let from = senderOf(ctx.info);
    // A member of the raw /ws room of the same name: the server put its name in the message.
    if (data.type === 'message' && typeof data.from === 'string') from = data.from + ' (via /ws)';
    else if (data.type !== undefined) return;
    const item = el('li', 'message');
    item.dataset.testid = 'message-item';
    const meta = el('div', 'meta');
    const who = el('span', 'from', from);
    who.dataset.testid = 'message-from';
    meta.append(who);
    if (ch.recovering !== null) {
      ch.recovering.count++;
      item.classList.add('recovered');
      item.dataset.recovered = 'true';
      meta.append(el('span', 'tag', 'recovered'));
    }
    const body = el('p', 'text', data.text.slice(0, MAX_TEXT_CHARS));
    body.dataset.testid = 'message-text';
    item.append(meta, body);
    append(ch, item);
    if (ch !== active) {
      ch.unread++;
      ch.badge.textContent = String(ch.unread);
      ch.badge.hidden = false;
    }
  }

  function renderPeople(ch) {
    const byUser = new Map();
    for (const info of ch.members.values()) {
      const entry = byUser.get(info.user) || { name: senderOf(info), count: 0 };
      entry.count++;
      byUser.set(info.user, entry);
    }
    const items = [...byUser.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((entry) => {
        const item = el('li', 'person');
        const name = el('span', '', entry.name);
        name.dataset.testid = 'person';
        item.append(name);
        if (entry.count > 1) item.append(el('span', 'muted', ' ×' + entry.count));
        return item;
      });
    ch.people.replaceChildren(...items);
    if (ch === active) ui.peopleCount.textContent = String(byUser.size);
  }

  async function loadPresence(ch) {
    try {
      const result = await ch.sub.presence();
      ch.members = new Map(Object.entries(result.clients));
      renderPeople(ch);
    } catch (error) {
      addNotice(ch, 'Presence unavailable: ' + (error && error.message));
    }
  }

  /** The latest messages, oldest first; live ones that came meanwhile follow them. */
  async function loadHistory(ch) {
    ch.loading = true;
    try {
      const result = await ch.sub.history({ limit: HISTORY_LIMIT, reverse: true });
      const publications = result.publications.slice().reverse();
      if (ch.epoch !== '' && ch.epoch !== result.epoch) {
        ch.lastOffset = 0;
        addNotice(ch, 'The channel history restarted.');
      }
      ch.epoch = result.epoch;
      for (const ctx of publications) showPublication(ch, ctx);
    } catch (error) {
      addNotice(ch, 'History unavailable: ' + (error && error.message));
    } finally {
      ch.loading = false;
      for (const ctx of ch.buffer.splice(0)) showPublication(ch, ctx);
    }
  }

  function onSubscribed(ch, ctx) {
    ch.button.classList.remove('pending');
    void loadPresence(ch);
    if (!ctx.wasRecovering) {
      void loadHistory(ch);
      return;
    }
    if (!ctx.recovered) {
      addNotice(
        ch,
        'Back online, but not every missed message could be recovered: reloading history.',
        'lost',
      );
      void loadHistory(ch);
      return;
    }
    // The recovered publications are delivered right after this event.
    const recovering = { count: 0 };
    ch.recovering = recovering;
    setTimeout(() => {
      if (ch.recovering === recovering) ch.recovering = null;
      const n = recovering.count;
      const text =
        n === 0
          ? 'Back online: nothing was missed.'
          : 'Back online: recovered ' + n + ' missed message' + (n === 1 ? '' : 's') + '.';
      addNotice(ch, text, 'recovered');
    }, 0);
  }

  function openChannel(name) {
    const existing = channels.get(name);
    if (existing !== undefined) {
      select(existing);
      return;
    }
    const sub = client.newSubscription(name);
    const button = el('button', 'channel pending');
    button.type = 'button';
    button.dataset.testid = 'channel-button';
    button.dataset.channel = name;
    const badge = el('span', 'badge', '');
    badge.hidden = true;
    button.append(el('span', '', '#' + name.slice(NAMESPACE.length)), badge);
    const item = el('li');
    item.append(button);
    ui.channelList.append(item);
    const list = el('ol', 'messages');
    list.dataset.testid = 'messages';
    list.dataset.channel = name;
    list.setAttribute('aria-live', 'polite');
    list.hidden = true;
    ui.messageLists.append(list);
    const people = el('ul', 'people-list');
    people.dataset.testid = 'people';
    people.dataset.channel = name;
    people.hidden = true;
    ui.peopleLists.append(people);

    const ch = {
      name,
      sub,
      item,
      button,
      badge,
      list,
      people,
      members: new Map(),
      lastOffset: 0,
      epoch: '',
      loading: false,
      buffer: [],
      recovering: null,
      unread: 0,
    };
    channels.set(name, ch);
    button.addEventListener('click', () => select(ch));

    sub.on('subscribed', (ctx) => onSubscribed(ch, ctx));
    sub.on('subscribing', () => ch.button.classList.add('pending'));
    sub.on('publication', (ctx) => {
      if (ch.loading) ch.buffer.push(ctx);
      else showPublication(ch, ctx);
    });
    sub.on('join', (ctx) => {
      ch.members.set(ctx.info.client, ctx.info);
      renderPeople(ch);
    });
    sub.on('leave', (ctx) => {
      ch.members.delete(ctx.info.client);
      renderPeople(ch);
    });
    sub.on('unsubscribed', (ctx) => {
      if (channels.get(name) === ch && ctx.code !== 0) addNotice(ch, 'Unsubscribed: ' + ctx.reason);
    });
    sub.on('error', (ctx) => addNotice(ch, 'Subscription error: ' + ctx.error.message));
    sub.subscribe();
    select(ch);
  }

  function select(ch) {
    active = ch;
    for (const other of channels.values()) {
      const current = other === ch;
      other.list.hidden = !current;
      other.people.hidden = !current;
      if (current) other.button.setAttribute('aria-current', 'true');
      else other.button.removeAttribute('aria-current');
    }
    ch.unread = 0;
    ch.badge.hidden = true;
    ui.channelTitle.textContent = ch.name;
    renderPeople(ch);
    ui.message.focus();
  }

  function leave(ch) {
    channels.delete(ch.name);
    ch.sub.unsubscribe();
    client.removeSubscription(ch.sub);
    ch.item.remove();
    ch.list.remove();
    ch.people.remove();
    const next = channels.values().next().value;
    if (next !== undefined) select(next);
    else {
      active = null;
      ui.channelTitle.textContent = '';
      ui.peopleCount.textContent = '0';
    }
  }

  // ---- connecting ------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    client = new Centrifuge(scheme + '//' + location.host + '/connection/websocket', {
      getToken,
      websocket: DemoSocket,
      minReconnectDelay: 300,
      maxReconnectDelay: 3000,
    });
    client.on('connecting', (ctx) => {
      if (offline) return;
      setStatus('connecting', 'Connecting… (' + ctx.reason + ')');
    });
    client.on('connected', () => {
      setStatus('connected', 'Connected as ' + userName);
      ui.network.hidden = false;
    });
    client.on('disconnected', (ctx) => {
      setStatus('disconnected', 'Disconnected: ' + ctx.reason + ' (code ' + ctx.code + ')');
      ui.network.hidden = true;
      ui.chat.hidden = true;
      ui.joinForm.hidden = false;
      ui.join.disabled = false;
      showJoinError('Disconnected: ' + ctx.reason + '. Connect again to continue.');
      for (const ch of [...channels.values()]) leave(ch);
      client = null;
    });
    client.connect();
    ui.joinForm.hidden = true;
    ui.chat.hidden = false;
    for (const name of DEFAULT_CHANNELS) openChannel(name);
    select(channels.get(DEFAULT_CHANNELS[0]));
  }

  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (client !== null) return;
    const name = ui.name.value.trim();
    if (name === '') return;
    userName = name;
    currentToken = '';
    showJoinError('');
    ui.join.disabled = true;
    setStatus('connecting', 'Connecting…');
    sessionStorage.setItem('wshub-demo-name', name);
    connect();
  });

  ui.newChannelForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const part = ui.newChannel.value.trim();
    if (!CHANNEL_PART.test(part) || client === null) return;
    if (channels.size >= MAX_CHANNELS && !channels.has(NAMESPACE + part)) {
      if (active !== null) addNotice(active, 'Leave a channel first: at most ' + MAX_CHANNELS + ' are open.');
      return;
    }
    ui.newChannel.value = '';
    openChannel(NAMESPACE + part);
  });

  ui.sendForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = ui.message.value;
    const ch = active;
    if (text.trim() === '' || ch === null) return;
    ui.message.value = '';
    ui.message.focus();
    try {
      await ch.sub.publish({ text });
    } catch (error) {
      addNotice(ch, 'Not sent: ' + ((error && error.message) || 'error') + '.', 'error');
      if (ui.message.value === '') ui.message.value = text;
    }
  });

  ui.leave.addEventListener('click', () => {
    if (active !== null) leave(active);
  });

  ui.network.addEventListener('click', () => setOffline(!offline));

  const saved = sessionStorage.getItem('wshub-demo-name');
  if (saved) ui.name.value = saved;
})();
