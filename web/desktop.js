// Switchboard agent desktop. Plain JavaScript, no build step, no framework.
//
// Rules this file keeps:
// - Data from the server (customer text, names, CAD values, reasons) only
//   ever reaches the page through textContent or attribute values, never as
//   markup. The server masks sensitive data; this page shows what it gets
//   and has no way to un-mask.
// - The session token lives in sessionStorage. The WebSocket reconnects by
//   itself with back-off; after each (re)connect the page re-syncs from
//   /api/me, keeping what is on screen (drafts, selection) meanwhile.
// - Every action goes through the REST API; the WebSocket only tells.
(function () {
  'use strict';

  var I18N = window.SwitchboardI18n;
  var t = I18N.t;
  var MAX_CHARS = 1000;
  var TYPING_EVERY_MS = 3000;   // how often the agent's typing is signalled
  var TYPING_SHOWN_MS = 6000;   // how long a customer's typing signal is shown
  var SESSION_KEY = 'switchboard.session';
  var LAST_LOGIN_KEY = 'switchboard.lastLogin';
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 10000;

  function $(id) { return document.getElementById(id); }

  // ---- state -------------------------------------------------------------

  var S = {
    session: null,        // {token, tenant, agent}
    me: { name: '', state: 'logged_out', reason: null, idleReasons: [], mask: false },
    convs: new Map(),     // id -> conversation (see newConv)
    order: [],            // conversation ids, first seen first
    selected: null,
    acceptedHere: new Set(),
    skew: 0,              // server clock minus browser clock, ms
    ws: null,
    wsGen: 0,
    synced: false,
    pending: [],
    backoff: BACKOFF_MIN,
    reconnectTimer: null,
    names: new Map(),     // agent id -> display name
    directory: { queues: [], agents: [] },
    rendered: { conv: null, count: 0 },
    blobs: new Map(),
    canned: { open: false, items: [], active: 0 }, // the `/` list of the composer     // attachment url -> Promise of its blob: URL
    loginMessage: null    // i18n key of the message shown in the login dialog
  };

  function newConv(id) {
    return {
      id: id, state: 'offered', queue: '', queueName: '', source: '', channel: '',
      customerName: '', receivedAt: 0, cad: {}, owner: null, guest: null,
      invitee: null, messages: [], offer: null, preview: '', wrapup: null,
      interrupted: null, draft: '', unread: 0, error: ''
    };
  }

  function conv(id) {
    var c = S.convs.get(id);
    if (!c) {
      c = newConv(id);
      S.convs.set(id, c);
      S.order.push(id);
    }
    return c;
  }

  function dropConv(id) {
    S.convs.delete(id);
    S.order = S.order.filter(function (x) { return x !== id; });
    S.acceptedHere.delete(id);
    if (S.selected === id) {
      S.selected = null;
      var next = S.order.find(function (x) { var c = S.convs.get(x); return c && !c.offer; });
      if (next !== undefined) S.selected = next;
    }
  }

  function isMine(c) {
    return c.owner === S.session.agent || c.guest === S.session.agent;
  }

  // ---- small helpers -----------------------------------------------------

  // Build an element. Text goes in with textContent only.
  function el(tag, opts, children) {
    var e = document.createElement(tag);
    opts = opts || {};
    if (opts.cls) e.className = opts.cls;
    if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
    if (opts.attrs) {
      Object.keys(opts.attrs).forEach(function (k) {
        var v = opts.attrs[k];
        if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (ch) { if (ch) e.appendChild(ch); });
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function initials(name) {
    var words = String(name || '').split(/\s+/).map(function (w) {
      return w.replace(/[^\p{L}\p{N}]/gu, '');
    }).filter(Boolean);
    if (words.length === 0) return '?';
    var first = Array.from(words[0])[0] || '';
    var last = words.length > 1 ? (Array.from(words[words.length - 1])[0] || '') : '';
    return (first + last).toUpperCase();
  }

  function serverNow() { return Date.now() + S.skew; }

  function noteServerTime(at) {
    var ms = Date.parse(at);
    if (!isNaN(ms)) S.skew = ms - Date.now();
  }

  function fmtElapsed(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var sec = s % 60;
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    return (h > 0 ? h + ':' + two(m) : two(m)) + ':' + two(sec);
  }

  function fmtTime(ms) {
    if (!ms) return '';
    return new Date(ms - S.skew).toLocaleTimeString(I18N.lang(), { hour: '2-digit', minute: '2-digit' });
  }

  function charCount(text) { return Array.from(text).length; }

  function agentName(id) {
    if (!id) return '';
    if (S.session && id === S.session.agent) return S.me.name || id;
    return S.names.get(id) || id;
  }

  function stateLabel(state, reason) {
    switch (state) {
      case 'available': return t('available');
      case 'idle': return reason ? t('idle') + ' — ' + reason : t('idle');
      case 'rona': return t('rona');
      case 'logged_out': return t('loggedOut');
      default: return state || '';
    }
  }

  // ---- API ---------------------------------------------------------------

  // Call the agent API. Resolves to {status, body, headers}; status 0 means
  // the network failed. A 401 ends the session (the token was refused).
  function api(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (S.session) headers['Authorization'] = 'Bearer ' + S.session.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store'
    }).then(function (resp) {
      return resp.text().then(function (txt) {
        var parsed = null;
        try { parsed = txt ? JSON.parse(txt) : null; } catch (e) { parsed = null; }
        if (resp.status === 401 && S.session && path !== '/api/login') sessionExpired();
        return { status: resp.status, body: parsed, headers: resp.headers };
      });
    }, function () {
      return { status: 0, body: null, headers: null };
    });
  }

  function errorText(r) {
    if (r.status === 0) return t('networkError');
    if (r.body && typeof r.body.error === 'string') return r.body.error;
    return t('httpError', { status: r.status });
  }

  // Apply the events an action answered with (the WebSocket brings them
  // too; every handler is idempotent).
  function applyEvents(r) {
    if (r.body && Array.isArray(r.body.events)) r.body.events.forEach(handle);
  }

  // ---- session -----------------------------------------------------------

  function saveSession() {
    try { sessionStorage.setItem(SESSION_KEY, JSON.stringify(S.session)); } catch (e) { /* private mode */ }
  }

  function loadSession() {
    try {
      var v = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (v && typeof v.token === 'string' && typeof v.agent === 'string') return v;
    } catch (e) { /* ignore */ }
    return null;
  }

  function showLogin(messageKey) {
    var d = $('login-dialog');
    var last = null;
    try { last = JSON.parse(localStorage.getItem(LAST_LOGIN_KEY) || 'null'); } catch (e) { last = null; }
    if (!$('login-tenant').value) $('login-tenant').value = (last && last.tenant) || 'demo';
    if (!$('login-agent').value && last && last.agent) $('login-agent').value = last.agent;
    $('login-password').value = '';
    $('login-error').textContent = '';
    S.loginMessage = messageKey;
    $('login-message').textContent = messageKey ? t(messageKey) : '';
    $('login-message').hidden = !messageKey;
    // After a refused token the screen stays visible behind the dialog.
    d.classList.toggle('relogin', messageKey === 'sessionExpired');
    $('login-lang').value = I18N.lang();
    if (!d.open) d.showModal();
    var first = !$('login-tenant').value ? 'login-tenant' : (!$('login-agent').value ? 'login-agent' : 'login-password');
    $(first).focus();
  }

  function login(ev) {
    ev.preventDefault();
    var tenant = $('login-tenant').value.trim();
    var agent = $('login-agent').value.trim();
    var password = $('login-password').value;
    if (!tenant || !agent || !password) {
      $('login-error').textContent = t('loginMissing');
      return;
    }
    $('login-submit').disabled = true;
    if ('Notification' in window && Notification.permission === 'default') {
      // Asked on a click, as browsers require; the answer does not block login.
      try { Notification.requestPermission(); } catch (e) { /* old browsers */ }
    }
    api('POST', '/api/login', { tenant: tenant, agent: agent, password: password }).then(function (r) {
      $('login-submit').disabled = false;
      if (r.status !== 200 || !r.body || !r.body.token) {
        $('login-error').textContent = r.status === 401 ? t('loginRefused') : errorText(r);
        return;
      }
      var previous = S.session;
      if (previous && (previous.agent !== agent || previous.tenant !== tenant)) resetScreen();
      S.session = { token: r.body.token, tenant: tenant, agent: agent };
      S.me.name = r.body.name || agent;
      saveSession();
      try { localStorage.setItem(LAST_LOGIN_KEY, JSON.stringify({ tenant: tenant, agent: agent })); } catch (e) { /* ignore */ }
      $('login-dialog').close();
      $('session-banner').hidden = true;
      start();
    });
  }

  function resetScreen() {
    dropBlobs();
    S.convs = new Map();
    S.order = [];
    S.selected = null;
    S.acceptedHere = new Set();
    S.rendered = { conv: null, count: 0 };
    renderAll();
  }

  // The server refused our token (it restarted, or the session was closed):
  // stop reconnecting, keep the screen as it is, and ask to log in again.
  function sessionExpired() {
    if (!S.session) return;
    S.wsGen++;
    clearTimeout(S.reconnectTimer);
    if (S.ws) { try { S.ws.close(); } catch (e) { /* ignore */ } S.ws = null; }
    try { sessionStorage.removeItem(SESSION_KEY); } catch (e) { /* ignore */ }
    S.session = Object.assign({}, S.session, { token: '' });
    setConn('offline');
    var banner = $('session-banner');
    banner.textContent = t('sessionExpired');
    banner.hidden = false;
    ['transfer-dialog', 'conference-dialog', 'wrapup-dialog'].forEach(function (id) {
      if ($(id).open) $(id).close();
    });
    $('login-agent').value = S.session.agent;
    $('login-tenant').value = S.session.tenant;
    showLogin('sessionExpired');
  }

  function logout() {
    api('POST', '/api/logout').then(function (r) {
      if (r.status !== 204 && r.status !== 200) {
        toast(errorText(r), 'error');
        return;
      }
      S.wsGen++;
      clearTimeout(S.reconnectTimer);
      if (S.ws) { try { S.ws.close(); } catch (e) { /* ignore */ } S.ws = null; }
      try { sessionStorage.removeItem(SESSION_KEY); } catch (e) { /* ignore */ }
      S.session = null;
      S.me = { name: '', state: 'logged_out', reason: null, idleReasons: [], mask: false };
      resetScreen();
      setConn('offline');
      showLogin('loggedOutMessage');
    });
  }

  // ---- connection --------------------------------------------------------

  function setConn(state) {
    var c = $('conn');
    c.dataset.state = state;
    c.textContent = state === 'online' ? t('connected') : state === 'offline' ? t('offline') : t('reconnecting');
  }

  function start() {
    $('logout').hidden = false;
    $('state-control').hidden = false;
    renderAll();
    connect();
  }

  function connect() {
    clearTimeout(S.reconnectTimer);
    if (!S.session || !S.session.token) return;
    var gen = ++S.wsGen;
    S.synced = false;
    S.pending = [];
    if ($('conn').dataset.state !== 'reconnecting') setConn('connecting');
    // A one-time ticket opens the socket: the session token never goes in
    // a URL (where proxies and browser history keep it).
    api('POST', '/api/agent/events/ticket').then(function (r) {
      if (gen !== S.wsGen) return;
      if (r.status !== 200 || !r.body || typeof r.body.ticket !== 'string') {
        lost(gen);
        return;
      }
      openSocket(gen, r.body.ticket);
    });
  }

  function openSocket(gen, ticket) {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws;
    try {
      ws = new WebSocket(proto + '//' + location.host + '/api/agent/events?ticket=' + encodeURIComponent(ticket));
    } catch (e) {
      lost(gen);
      return;
    }
    S.ws = ws;
    ws.onopen = function () { if (gen === S.wsGen) resync(gen); };
    ws.onmessage = function (m) {
      if (gen !== S.wsGen) return;
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (S.synced) handle(ev); else S.pending.push(ev);
    };
    ws.onclose = function () { if (gen === S.wsGen) lost(gen); };
  }

  // The socket closed or could not open: find out whether the token still
  // works, then try again after a growing pause.
  function lost(gen) {
    S.ws = null;
    S.synced = false;
    setConn('reconnecting');
    api('GET', '/api/me').then(function (r) {
      if (gen !== S.wsGen) return; // a 401 ended the session meanwhile
      var delay = S.backoff * (0.75 + Math.random() * 0.5);
      S.backoff = Math.min(S.backoff * 2, BACKOFF_MAX);
      if (r.status === 200 && r.body) applySnapshot(r.body, r.headers);
      S.reconnectTimer = setTimeout(connect, delay);
    });
  }

  function resync(gen) {
    api('GET', '/api/me').then(function (r) {
      if (gen !== S.wsGen) return;
      if (r.status !== 200 || !r.body) {
        if (S.ws) S.ws.close();
        return;
      }
      applySnapshot(r.body, r.headers);
      S.synced = true;
      var pending = S.pending;
      S.pending = [];
      pending.forEach(handle);
      S.backoff = BACKOFF_MIN;
      setConn('online');
      refreshNames();
    });
  }

  function refreshNames() {
    return api('GET', '/api/directory').then(function (r) {
      if (r.status === 200 && r.body) {
        S.directory = { queues: r.body.queues || [], agents: r.body.agents || [] };
        S.directory.agents.forEach(function (a) { S.names.set(a.id, a.name || a.id); });
        renderAll();
      }
      return r;
    });
  }

  // ---- applying server state ---------------------------------------------

  function applyDetails(c, d) {
    if (d.state) c.state = d.state;
    if (d.customer_name !== undefined) c.customerName = d.customer_name;
    if (d.channel !== undefined) c.channel = d.channel;
    if (d.source !== undefined) c.source = d.source;
    if (d.received_at) c.receivedAt = Date.parse(d.received_at) || c.receivedAt;
    if (d.cad && typeof d.cad === 'object') c.cad = d.cad;
    if (d.owner !== undefined) c.owner = d.owner;
    if (d.guest !== undefined) c.guest = d.guest;
    if (d.customer_wrote_at) noteCustomerWrote(c, Date.parse(d.customer_wrote_at));
    if (d.queue) c.queue = d.queue;
    if (d.queue_name) c.queueName = d.queue_name;
    if (Array.isArray(d.messages)) {
      c.messages = d.messages.map(function (m) {
        return { from: m.from, author: m.author, text: m.text, at: Date.parse(m.at) || 0, attachments: attachmentsOf(m), failed: typeof m.failed === 'string' ? m.failed : undefined, receipt: receiptOf(m.receipt) };
      });
      if (S.rendered.conv === c.id) S.rendered.count = -1; // redraw
    }
  }

  function applySnapshot(me, headers) {
    var date = headers && headers.get && headers.get('Date');
    if (date) {
      var skew = Date.parse(date) + 500 - Date.now();
      if (!isNaN(skew) && Math.abs(skew - S.skew) > 2000) S.skew = skew;
    }
    S.me.name = me.name || S.me.name;
    // Supervisors and admins reach the console from here.
    $('console-link').hidden = !(me.role === 'supervisor' || me.role === 'admin');
    S.me.state = me.state;
    S.me.reason = me.reason || null;
    S.me.idleReasons = Array.isArray(me.idle_reasons) ? me.idle_reasons : [];
    S.me.mask = !!me.mask;
    S.me.replyWindowMs = typeof me.messenger_reply_window_ms === 'number' ? me.messenger_reply_window_ms : null;
    var seen = new Set();
    (me.conversations || []).forEach(function (d) {
      var id = d.conversation;
      seen.add(id);
      var c = conv(id);
      applyDetails(c, d);
      c.offer = d.offer ? { kind: d.offer.kind, expiresAt: Date.parse(d.offer.expires_at) || 0 } : null;
      if (d.preview !== undefined) c.preview = d.preview;
      c.wrapup = d.wrapup_pending ? (d.reasons || c.wrapup || []) : null;
      if (c.state === 'interrupted' && !c.interrupted) c.interrupted = d.interrupted_reason || t('interruptedGeneric');
    });
    S.order.slice().forEach(function (id) { if (!seen.has(id)) dropConv(id); });
    renderAll();
  }

  function appendMessage(c, m) {
    var msg = { from: m.from, author: m.author, text: m.text, at: Date.parse(m.at) || 0, attachments: attachmentsOf(m) };
    // The same message can come twice (action answer and WebSocket, or a
    // resync overlapping the socket): keep one.
    var tail = c.messages.slice(-20);
    var dup = tail.some(function (x) {
      return x.from === msg.from && x.author === msg.author && x.text === msg.text && x.at === msg.at;
    });
    if (dup) return false;
    c.messages.push(msg);
    return true;
  }

  function handle(ev) {
    if (!ev || typeof ev.type !== 'string') return;
    if (ev.at && ev.type !== 'message') noteServerTime(ev.at);
    var id = ev.conversation;
    var c = id !== undefined ? S.convs.get(id) : null;
    switch (ev.type) {
      case 'agent_state': {
        var was = S.me.state;
        S.me.state = ev.state;
        S.me.reason = ev.reason || null;
        if (ev.state === 'rona' && was !== 'rona') toast(t('ronaToast'), 'warn');
        renderState();
        break;
      }
      case 'offer': {
        c = conv(id);
        var isNew = !c.offer;
        c.offer = { kind: ev.kind || 'queue', expiresAt: Date.parse(ev.expires_at) || 0 };
        if (ev.queue) c.queue = ev.queue;
        c.queueName = ev.queue_name || ev.queue || c.queueName;
        if (ev.source !== undefined) c.source = ev.source;
        if (ev.channel !== undefined) c.channel = ev.channel;
        if (ev.customer_name !== undefined) c.customerName = ev.customer_name;
        if (ev.received_at) c.receivedAt = Date.parse(ev.received_at) || c.receivedAt;
        if (ev.preview !== undefined) c.preview = ev.preview;
        if (isNew) notifyOffer(c);
        renderAll();
        break;
      }
      case 'offer_rescinded': {
        if (!c) break;
        var hadOffer = !!c.offer;
        c.offer = null;
        if (!isMine(c) && !c.wrapup) dropConv(id);
        if (hadOffer) toast(t('offerWithdrawn', { name: c.customerName, reason: t('rescind_' + ev.reason) }), 'info');
        renderAll();
        break;
      }
      case 'conversation_started': {
        c = conv(id);
        applyDetails(c, ev);
        c.offer = null;
        c.owner = ev.agent;
        if (!c.state || c.state === 'offered' || c.state === 'queued') c.state = 'active';
        if (S.acceptedHere.has(id) || S.selected === null) select(id, true);
        renderAll();
        break;
      }
      case 'message': {
        if (!c) break;
        var added = appendMessage(c, ev);
        if (ev.from === 'customer') {
          c.typingUntil = 0;
          renderTyping();
          noteCustomerWrote(c, typeof ev.sent_at === 'number' ? ev.sent_at : Date.parse(ev.at));
        }
        if (added && S.selected !== id) c.unread++;
        // A customer writing in a conversation the agent is not looking at
        // (another one selected, or the page hidden) is notified too.
        if (added && ev.from === 'customer' && isMine(c) && S.synced && (S.selected !== id || document.hidden)) notifyMessage(c, ev);
        renderAll();
        break;
      }
      case 'delivery_failed': {
        // A reply that did not reach the customer: mark it, and add the
        // transcript's notice (the server journaled both).
        if (!c) break;
        var undelivered = c.messages[ev.message];
        if (undelivered && undelivered.from === 'agent') undelivered.failed = String(ev.reason || '');
        if (typeof ev.text === 'string') appendMessage(c, { from: 'system', author: 'system', text: ev.text, at: ev.at });
        if (S.rendered.conv === id) S.rendered.count = -1;
        toast(t('deliveryFailed', { name: c.customerName || t('customer') }), 'error');
        renderAll();
        break;
      }
      case 'receipt': {
        // The customer's channel reports the agents' replies delivered or
        // read, up to transcript entry `through`.
        if (!c || !markReceipts(c, receiptOf(ev.status), ev.through)) break;
        if (S.rendered.conv === id) S.rendered.count = -1;
        renderAll();
        break;
      }
      case 'customer_typing': {
        // Shown for a few seconds (the customer's page repeats it while
        // typing); a message from the customer ends it.
        if (!c) break;
        c.typingUntil = Date.now() + TYPING_SHOWN_MS;
        renderTyping();
        break;
      }
      case 'message_redacted': {
        // An earlier customer message masked after the fact (a number split
        // over two messages): the frame carries the masked transcript.
        if (!c) break;
        applyDetails(c, ev);
        if (typeof ev.preview === 'string') c.preview = ev.preview;
        renderAll();
        break;
      }
      case 'transferred': {
        if (!c) break;
        c.state = 'transferred';
        renderAll();
        break;
      }
      case 'conference_requested': {
        if (!c) break;
        c.state = 'conference_requested';
        c.invitee = ev.invitee;
        renderAll();
        break;
      }
      case 'conference_cancelled': {
        if (!c) break;
        if (c.state === 'conference_requested') c.state = 'active';
        c.invitee = null;
        toast(t('conferenceCancelled', { name: agentName(ev.invitee) }), 'info');
        renderAll();
        break;
      }
      case 'conference_started': {
        c = conv(id);
        applyDetails(c, ev);
        c.state = 'conference';
        c.guest = ev.agent;
        c.invitee = null;
        if (ev.agent === S.session.agent) {
          c.offer = null;
          if (S.acceptedHere.has(id) || S.selected === null) select(id, true);
        }
        renderAll();
        break;
      }
      case 'conference_ended': {
        if (!c) break;
        c.state = 'ended';
        renderAll();
        break;
      }
      case 'participant_left': {
        if (!c) break;
        if (ev.agent === S.session.agent) {
          dropConv(id);
          toast(t('youLeft', { name: c.customerName }), 'info');
        } else {
          c.guest = null;
          if (c.state === 'conference') c.state = 'active';
        }
        renderAll();
        break;
      }
      case 'conversation_interrupted': {
        if (!c) break;
        c.state = 'interrupted';
        c.interrupted = ev.reason || t('interruptedGeneric');
        toast(t('interruptedToast', { name: c.customerName, reason: c.interrupted }), 'error');
        renderAll();
        break;
      }
      case 'conversation_ended': {
        if (!c) break;
        c.state = 'ended';
        renderAll();
        break;
      }
      case 'wrapup_required': {
        if (!c) break;
        c.wrapup = Array.isArray(ev.reasons) ? ev.reasons : [];
        if (S.selected === null) select(id, false);
        if (S.selected === id) openWrapup(id);
        else toast(t('wrapupNeeded', { name: c.customerName }), 'info');
        renderAll();
        break;
      }
      case 'wrapup_submitted': {
        if (!c) break;
        if ($('wrapup-dialog').open && $('wrapup-dialog').dataset.conversation === String(id)) $('wrapup-dialog').close();
        dropConv(id);
        renderAll();
        break;
      }
      default:
        break;
    }
  }

  function notifyOffer(c) {
    var title = t('newRequest') + ' — ' + (c.queueName || c.queue);
    document.title = t('titleWithOffers', { n: offersWaiting() });
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      // The preview is the server's, masked when the tenant says so.
      var n = new Notification(title, { body: c.preview || '', tag: 'switchboard-offer-' + c.id });
      n.onclick = function () {
        window.focus();
        var b = document.querySelector('.offer[data-conversation="' + c.id + '"] .offer-accept');
        if (b) b.focus();
        n.close();
      };
    } catch (e) { /* notifications unsupported here */ }
  }

  function notifyMessage(c, ev) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      // The text is the server's, masked when the tenant says so.
      var n = new Notification(t('newMessageFrom', { name: c.customerName || t('customer') }), {
        body: String(ev.text || ''), tag: 'switchboard-message-' + c.id
      });
      n.onclick = function () {
        window.focus();
        select(c.id, true);
        n.close();
      };
    } catch (e) { /* notifications unsupported here */ }
  }

  function offersWaiting() {
    var n = 0;
    S.convs.forEach(function (c) { if (c.offer) n++; });
    return n;
  }

  // ---- rendering ---------------------------------------------------------

  function renderAll() {
    renderState();
    renderOffers();
    renderList();
    renderPane();
    renderTyping();
    renderDetails();
    var n = offersWaiting();
    document.title = n > 0 ? t('titleWithOffers', { n: n }) : t('title');
  }

  function renderState() {
    var sel = $('state-select');
    var st = S.me.state;
    var options = [['available', t('available'), false]];
    var reasons = S.me.idleReasons.slice();
    if (st === 'idle' && S.me.reason && reasons.indexOf(S.me.reason) < 0) reasons.unshift(S.me.reason);
    reasons.forEach(function (r) { options.push(['idle:' + r, t('idle') + ' — ' + r, false]); });
    if (reasons.length === 0) options.push(['idle:', t('idle'), false]);
    if (st === 'rona') options.push(['rona', t('rona'), true]);
    if (st === 'logged_out') options.push(['logged_out', t('loggedOut'), true]);
    // Rebuilt only when the choices change: every event re-renders, and a
    // list rebuilt under the agent's pointer would close while they choose.
    var key = JSON.stringify(options);
    if (sel.dataset.options !== key) {
      clear(sel);
      options.forEach(function (o) {
        sel.appendChild(el('option', { text: o[1], attrs: { value: o[0], disabled: o[2] } }));
      });
      sel.dataset.options = key;
    }
    sel.value = st === 'idle' ? 'idle:' + (S.me.reason || '') : st;
    $('state-dot').dataset.state = st;
    document.body.dataset.agentState = st;
    $('agent-name').textContent = S.session ? (S.me.name || S.session.agent) : '';
    $('rona-banner').hidden = st !== 'rona';
  }

  function changeState() {
    var v = $('state-select').value;
    var body = v === 'available' ? { state: 'available' }
      : v.indexOf('idle:') === 0 ? { state: 'idle', reason: v.slice(5) } : null;
    if (!body) return;
    setState(body);
  }

  function setState(body) {
    api('PUT', '/api/agent/state', body).then(function (r) {
      if (r.status === 200 && r.body) {
        S.me.state = r.body.state || S.me.state;
        S.me.reason = r.body.reason || null;
      } else if (r.status !== 401) {
        toast(errorText(r), 'error');
      }
      renderState();
    });
  }

  function renderOffers() {
    var list = $('offers');
    var ids = S.order.filter(function (id) { var c = S.convs.get(id); return c && c.offer; });
    $('no-offers').hidden = ids.length > 0;
    // Keep existing cards (their focus and timers), add and remove the rest.
    var existing = new Map();
    Array.prototype.forEach.call(list.children, function (li) { existing.set(Number(li.dataset.conversation), li); });
    existing.forEach(function (li, id) { if (ids.indexOf(id) < 0) li.remove(); });
    ids.forEach(function (id) {
      var c = S.convs.get(id);
      var li = existing.get(id);
      if (!li) {
        li = buildOffer(c);
        list.appendChild(li);
      }
      fillOffer(li, c);
    });
  }

  function buildOffer(c) {
    var titleId = 'offer-title-' + c.id;
    var li = el('li', {
      cls: 'offer',
      attrs: { 'data-conversation': c.id, role: 'alertdialog', 'aria-labelledby': titleId, 'aria-describedby': 'offer-desc-' + c.id }
    });
    var head = el('div', { cls: 'offer-head' }, [
      el('span', { cls: 'offer-kind' }),
      el('span', { cls: 'offer-timer', attrs: { role: 'timer', 'aria-live': 'off' } })
    ]);
    var title = el('h3', { cls: 'offer-title', attrs: { id: titleId } });
    var desc = el('dl', { cls: 'offer-desc', attrs: { id: 'offer-desc-' + c.id } }, [
      el('dt', { cls: 'lbl-queue' }), el('dd', { cls: 'offer-queue' }),
      el('dt', { cls: 'lbl-source' }), el('dd', { cls: 'offer-source' })
    ]);
    var preview = el('p', { cls: 'offer-preview' });
    var accept = el('button', { cls: 'btn btn-accept offer-accept', attrs: { type: 'button' } });
    accept.addEventListener('click', function () { acceptOffer(c.id, accept); });
    li.appendChild(head);
    li.appendChild(title);
    li.appendChild(desc);
    li.appendChild(preview);
    li.appendChild(accept);
    return li;
  }

  function fillOffer(li, c) {
    var kind = c.offer ? c.offer.kind : 'queue';
    li.dataset.kind = kind;
    li.querySelector('.offer-kind').textContent = t('offerKind_' + kind);
    var timer = li.querySelector('.offer-timer');
    timer.dataset.since = String(c.receivedAt);
    timer.textContent = fmtElapsed(serverNow() - c.receivedAt);
    timer.setAttribute('aria-label', t('sinceReceived'));
    timer.title = t('sinceReceived');
    li.querySelector('.offer-title').textContent = c.customerName || t('customer');
    li.querySelector('.lbl-queue').textContent = t('queue');
    li.querySelector('.offer-queue').textContent = c.queueName || c.queue;
    li.querySelector('.lbl-source').textContent = t('source');
    li.querySelector('.offer-source').textContent = c.source;
    li.querySelector('.offer-preview').textContent = c.preview || '';
    var accept = li.querySelector('.offer-accept');
    accept.textContent = t('accept');
    accept.setAttribute('aria-label', t('acceptFrom', { name: c.customerName || t('customer') }));
  }

  function acceptOffer(id, button) {
    button.disabled = true;
    S.acceptedHere.add(id);
    api('POST', '/api/conversations/' + id + '/accept', {}).then(function (r) {
      button.disabled = false;
      if (r.status !== 200) {
        S.acceptedHere.delete(id);
        toast(errorText(r), 'error');
        return;
      }
      applyEvents(r);
      if (S.acceptedHere.has(id) || S.selected === null) select(id, true);
    });
  }

  function phaseOf(c) {
    if (c.wrapup) return 'wrapup';
    return c.state;
  }

  function phaseLabel(c) {
    var p = phaseOf(c);
    if (p === 'wrapup') return t('phase_wrapup');
    if (p === 'conference' && c.guest === S.session.agent) return t('phase_conference_guest');
    return t('phase_' + p);
  }

  function renderList() {
    var list = $('conv-list');
    clear(list);
    var ids = S.order.filter(function (id) { var c = S.convs.get(id); return c && !c.offer; });
    $('no-conversations').hidden = ids.length > 0;
    ids.forEach(function (id) {
      var c = S.convs.get(id);
      var last = c.messages.length ? c.messages[c.messages.length - 1] : null;
      var btn = el('button', {
        cls: 'conv-item',
        attrs: { type: 'button', 'aria-current': S.selected === id ? 'true' : null }
      }, [
        el('span', { cls: 'avatar', text: initials(c.customerName), attrs: { 'aria-hidden': 'true' } }),
        el('span', { cls: 'conv-main' }, [
          el('span', { cls: 'conv-name', text: c.customerName || t('customer') }),
          el('span', { cls: 'conv-last', text: last ? last.text : (c.preview || '') })
        ]),
        el('span', { cls: 'conv-side' }, [
          el('span', { cls: 'badge badge-' + phaseOf(c), text: phaseLabel(c) }),
          c.unread > 0 ? el('span', { cls: 'unread', text: c.unread, attrs: { 'aria-label': t('unread', { n: c.unread }) } }) : null
        ])
      ]);
      btn.addEventListener('click', function () {
        // The agent's own choice wins over an accept still on its way:
        // its answer must not pull the pane back to the accepted one.
        S.acceptedHere = new Set();
        select(id, true);
      });
      list.appendChild(el('li', { attrs: { 'data-conversation': id, 'data-phase': phaseOf(c) } }, [btn]));
    });
  }

  function select(id, focusComposer) {
    var c = S.convs.get(id);
    if (!c) return;
    if (S.selected !== id) {
      closeCanned();
      // Opening a Messenger conversation shows the customer "seen".
      if (c.channel === 'messenger' && isMine(c) && phaseOf(c) === 'active') api('POST', '/api/conversations/' + id + '/seen', {});
    }
    S.selected = id;
    c.unread = 0;
    renderAll();
    if (focusComposer && !$('compose').disabled && !anyDialogOpen()) $('compose').focus();
    if (c.wrapup && !$('wrapup-dialog').open && !anyDialogOpen()) openWrapup(id);
  }

  function anyDialogOpen() {
    return ['login-dialog', 'transfer-dialog', 'conference-dialog', 'wrapup-dialog'].some(function (d) { return $(d).open; });
  }

  function renderPane() {
    var c = S.selected !== null ? S.convs.get(S.selected) : null;
    $('empty-pane').hidden = !!c;
    $('pane').hidden = !c;
    if (!c) { S.rendered = { conv: null, count: 0 }; return; }
    var me = S.session.agent;
    var owner = c.owner === me;
    var guest = c.guest === me;
    var phase = phaseOf(c);
    $('pane').dataset.conversation = c.id;
    $('pane').dataset.phase = phase;
    $('pane-avatar').textContent = initials(c.customerName);
    $('pane-title').textContent = c.customerName || t('customer');
    $('pane-queue').textContent = c.queueName || c.queue;
    $('pane-source').textContent = c.source;
    var badge = $('pane-state');
    badge.textContent = phaseLabel(c);
    badge.className = 'badge badge-' + phase;

    var open = phase === 'active' || phase === 'conference_requested' || phase === 'conference';
    var show = function (id, visible) { $(id).hidden = !visible; };
    show('btn-transfer', owner && open);
    show('btn-conference', owner && open);
    $('btn-transfer').disabled = phase !== 'active';
    $('btn-conference').disabled = phase !== 'active';
    show('btn-end-conference', owner && phase === 'conference');
    show('btn-leave-conference', guest && phase === 'conference');
    show('btn-end', owner && (open || phase === 'interrupted') && phase !== 'conference');
    show('btn-wrapup', phase === 'wrapup');

    var alert = $('interrupted-alert');
    alert.hidden = phase !== 'interrupted';
    alert.textContent = phase === 'interrupted' ? t('interruptedAlert', { reason: c.interrupted || t('interruptedGeneric') }) : '';

    var win = replyWindow(c);
    c.windowClosed = !!(win && win.closed);
    renderReplyWindow(c, win);
    var canWrite = open && (owner || guest) && !c.windowClosed;
    $('compose').disabled = !canWrite;
    $('send').disabled = !canWrite;
    $('attach-file').disabled = !canWrite;
    renderPendingFiles(c);
    if (document.activeElement !== $('compose') || S.rendered.conv !== c.id) $('compose').value = c.draft || '';
    $('compose-error').textContent = c.error || '';
    updateCounter();
    renderMessages(c);
  }

  function renderMessages(c) {
    var list = $('messages');
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    if (S.rendered.conv !== c.id || S.rendered.count < 0 || S.rendered.count > c.messages.length) {
      clear(list);
      S.rendered = { conv: c.id, count: 0 };
      nearBottom = true;
    }
    for (var i = S.rendered.count; i < c.messages.length; i++) list.appendChild(messageItem(c, c.messages[i]));
    S.rendered.count = c.messages.length;
    if (nearBottom) list.scrollTop = list.scrollHeight;
  }

  function messageItem(c, m) {
    if (m.from === 'system') {
      return el('li', { cls: 'msg msg-system' }, [
        el('p', { cls: 'text', text: m.text }),
        el('time', { text: fmtTime(m.at) })
      ]);
    }
    var customer = m.from === 'customer';
    var author = customer ? (m.author || c.customerName) : (m.author === S.session.agent ? t('you') : agentName(m.author));
    var meta = el('div', { cls: 'meta' }, [
      el('span', { cls: 'author', text: author }),
      el('time', { text: fmtTime(m.at) }),
      !customer && m.receipt ? receiptMark(m.receipt) : null
    ]);
    var parts = [meta];
    if (m.text || !(m.attachments && m.attachments.length)) parts.push(el('p', { cls: 'text', text: m.text }));
    if (m.attachments && m.attachments.length) {
      parts.push(el('ul', { cls: 'attachments' }, m.attachments.map(attachmentItem)));
    }
    if (m.failed) {
      var why = I18N.has('failed_' + m.failed) ? t('failed_' + m.failed) : m.failed;
      var failedLine = el('p', { cls: 'delivery-failed', text: t('notDelivered') + ' — ' + why, attrs: { role: 'status' } });
      if (!customer && m.author === S.session.agent && !m.retried && isMine(c) && c.state === 'active') {
        var retry = el('button', { cls: 'btn btn-small retry', text: t('retry'), attrs: { type: 'button' } });
        retry.addEventListener('click', function () { retrySend(c, m, retry); });
        failedLine.appendChild(document.createTextNode(' '));
        failedLine.appendChild(retry);
      }
      parts.push(failedLine);
    }
    var bubble = el('div', { cls: 'bubble' }, parts);
    var children = customer
      ? [el('span', { cls: 'avatar', text: initials(m.author || c.customerName), attrs: { 'aria-hidden': 'true' } }), bubble]
      : [bubble];
    var cls = 'msg ' + (customer ? 'msg-customer' : 'msg-agent') + (m.failed ? ' msg-failed' : '');
    return el('li', { cls: cls }, children);
  }

  // ---- Attachments -------------------------------------------------------

  // Only the fields the page uses, as plain values (the server's own
  // `/api/attachments/{id}` URLs; anything else is not fetched).
  function attachmentsOf(m) {
    if (!m || !Array.isArray(m.attachments)) return [];
    return m.attachments.filter(function (a) { return a && typeof a === 'object'; }).map(function (a) {
      var str = function (v) { return typeof v === 'string' ? v : null; };
      var num = function (v) { return typeof v === 'number' && isFinite(v) ? v : null; };
      return {
        id: str(a.id), type: str(a.type) || 'file', url: str(a.url), name: str(a.name), mime: str(a.mime),
        size: num(a.size), latitude: num(a.latitude), longitude: num(a.longitude), title: str(a.title)
      };
    });
  }

  function ownUrl(url) { return typeof url === 'string' && url.indexOf('/api/attachments/') === 0; }

  // The content of an attachment as a blob: URL, fetched once with the
  // agent's token (an <img src> could not carry it).
  function attachmentBlob(a) {
    if (!ownUrl(a.url) || !S.session) return Promise.reject(new Error('no url'));
    var key = a.url;
    if (S.blobs.has(key)) return S.blobs.get(key);
    var p = fetch(a.url, { headers: { 'Authorization': 'Bearer ' + S.session.token }, cache: 'no-store' }).then(function (resp) {
      if (resp.status === 401) sessionExpired();
      if (!resp.ok) throw new Error('status ' + resp.status);
      return resp.blob();
    }).then(function (blob) { return URL.createObjectURL(blob); });
    p.catch(function () { S.blobs.delete(key); });
    S.blobs.set(key, p);
    return p;
  }

  function dropBlobs() {
    S.blobs.forEach(function (p) { p.then(function (u) { URL.revokeObjectURL(u); }, function () {}); });
    S.blobs = new Map();
  }

  function fmtSize(n) {
    if (n === null || n === undefined) return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }

  function fmtCoord(v) { return v === null ? '?' : v.toFixed(5); }

  function isPicture(a) {
    return (a.type === 'image' || a.type === 'sticker') && (!a.mime || a.mime.indexOf('image/') === 0);
  }

  function attachmentItem(a) {
    if (a.type === 'location') {
      var coords = fmtCoord(a.latitude) + ', ' + fmtCoord(a.longitude);
      return el('li', { cls: 'att att-location' }, [
        el('span', { cls: 'att-kind', text: t('attLocation') }),
        a.title ? el('span', { cls: 'att-title', text: a.title }) : null,
        el('span', { cls: 'att-coords', text: coords })
      ]);
    }
    if (a.type === 'link') {
      return el('li', { cls: 'att att-link' }, [
        el('span', { cls: 'att-kind', text: t('attLink') }),
        el('span', { cls: 'att-title', text: a.title || a.name || '' })
      ]);
    }
    var label = a.name || a.title || t('attFile');
    if (isPicture(a)) {
      var img = el('img', { cls: 'att-thumb', attrs: { alt: label } });
      var open = el('a', { cls: 'att-open', attrs: { href: '#', target: '_blank', rel: 'noopener', title: t('attOpen') } }, [img]);
      open.addEventListener('click', function (ev) { if (open.getAttribute('href') === '#') ev.preventDefault(); });
      attachmentBlob(a).then(function (u) {
        img.src = u;
        open.href = u;
      }, function () {
        img.alt = t('attUnavailable') + ': ' + label;
      });
      return el('li', { cls: 'att att-image' }, [open]);
    }
    var size = fmtSize(a.size);
    var link = el('a', { cls: 'att-download', text: label, attrs: { href: '#', title: t('attDownload') } });
    link.addEventListener('click', function (ev) {
      if (link.dataset.ready) return; // the blob URL is set: the browser downloads it
      ev.preventDefault();
      attachmentBlob(a).then(function (u) {
        link.href = u;
        link.download = a.name || 'attachment';
        link.dataset.ready = '1';
        link.click();
      }, function () { toast(t('attUnavailable'), 'warn'); });
    });
    return el('li', { cls: 'att att-file' }, [
      el('span', { cls: 'att-kind', text: t(a.type === 'video' ? 'attVideo' : a.type === 'audio' ? 'attAudio' : 'attFile') }),
      link,
      size ? el('span', { cls: 'att-size', text: size }) : null
    ]);
  }

  function renderDetails() {
    var c = S.selected !== null ? S.convs.get(S.selected) : null;
    var dl = $('details');
    var cad = $('cad');
    clear(dl);
    clear(cad);
    if (!c) {
      dl.appendChild(el('dd', { cls: 'muted', text: t('noSelection') }));
      return;
    }
    var row = function (list, key, value, extra) {
      list.appendChild(el('dt', { text: key }));
      var dd = el('dd', { text: value });
      if (extra) extra(dd);
      list.appendChild(dd);
    };
    row(dl, t('customer'), c.customerName);
    row(dl, t('channel'), c.channel === 'webchat' ? t('webchat') : c.channel === 'messenger' ? 'Messenger' : c.channel);
    row(dl, t('queue'), c.queueName || c.queue);
    row(dl, t('source'), c.source);
    row(dl, t('received'), fmtTime(c.receivedAt));
    row(dl, t('elapsed'), fmtElapsed(serverNow() - c.receivedAt), function (dd) {
      dd.dataset.since = String(c.receivedAt);
      dd.className = 'elapsed';
    });
    var people = [];
    if (c.owner) people.push(agentName(c.owner));
    if (c.guest) people.push(agentName(c.guest));
    if (c.invitee && c.state === 'conference_requested') people.push(agentName(c.invitee) + ' (' + t('invited') + ')');
    row(dl, t('participants'), people.join(', ') || '—');
    var keys = Object.keys(c.cad || {});
    if (keys.length === 0) cad.appendChild(el('dd', { cls: 'muted', text: '—' }));
    keys.sort().forEach(function (k) {
      var label = I18N.has('cad_' + k) ? t('cad_' + k) : k;
      row(cad, label, c.cad[k]);
    });
    renderHistory(c);
  }

  // The customer's earlier conversations (fetched once per conversation;
  // a transcript on demand, shown under its entry).
  function renderHistory(c) {
    var list = $('history');
    clear(list);
    if (!c) return;
    if (c.history === undefined) {
      c.history = null;
      api('GET', '/api/conversations/' + c.id + '/history').then(function (r) {
        c.history = r.status === 200 && r.body && Array.isArray(r.body.conversations) ? r.body.conversations : [];
        if (S.selected === c.id) renderHistory(c);
      });
    }
    if (!c.history) return;
    if (c.history.length === 0) {
      list.appendChild(el('li', { cls: 'muted', text: t('noHistory') }));
      return;
    }
    c.history.forEach(function (p) {
      var when = p.opened_at ? new Date(p.opened_at - S.skew).toLocaleString(I18N.lang(), { dateStyle: 'short', timeStyle: 'short' }) : '';
      var who = p.agent_name || p.agent || t('noAgent');
      var reasons = (p.wrapup_reasons || []).join(', ');
      var line = [when, p.queue_name || p.queue, who].concat(reasons ? [reasons] : []).join(' · ');
      var show = el('button', { cls: 'btn btn-small', text: t('showTranscript'), attrs: { type: 'button' } });
      var body = el('ol', { cls: 'history-transcript' });
      body.hidden = true;
      show.addEventListener('click', function () {
        if (!body.hidden) { body.hidden = true; return; }
        api('GET', '/api/conversations/' + c.id + '/history/' + p.conversation).then(function (r) {
          if (r.status !== 200 || !r.body || !Array.isArray(r.body.messages)) { toast(errorText(r), 'warn'); return; }
          clear(body);
          r.body.messages.forEach(function (m) {
            var from = m.from === 'system' ? '' : (m.author || (m.from === 'agent' ? t('agent') : t('customer')));
            body.appendChild(el('li', { cls: 'history-line ' + (m.from || ''), text: (from ? from + ': ' : '') + (m.text || '') }));
          });
          body.hidden = false;
        });
      });
      var li = el('li', { cls: 'history-item', attrs: { 'data-conversation': String(p.conversation) } }, [
        el('span', { cls: 'history-summary', text: line }), show, body
      ]);
      list.appendChild(li);
    });
  }

  // ---- Receipts and the reply window (Messenger) ---------------------------

  function receiptOf(v) { return v === 'read' || v === 'delivered' ? v : undefined; }
  var RECEIPT_RANK = { delivered: 1, read: 2 };

  // Raise the agents' replies up to `through` to `status`; whether any changed.
  function markReceipts(c, status, through) {
    if (!status || typeof through !== 'number') return false;
    var changed = false;
    for (var i = 0; i <= through && i < c.messages.length; i++) {
      var m = c.messages[i];
      if (m.from === 'agent' && (RECEIPT_RANK[m.receipt] || 0) < RECEIPT_RANK[status]) {
        m.receipt = status;
        changed = true;
      }
    }
    return changed;
  }

  // ✓ delivered, ✓✓ read; screen readers hear the word.
  function receiptMark(status) {
    var label = t(status === 'read' ? 'receiptRead' : 'receiptDelivered');
    return el('span', { cls: 'receipt receipt-' + status, attrs: { title: label } }, [
      el('span', { text: status === 'read' ? '✓✓' : '✓', attrs: { 'aria-hidden': 'true' } }),
      el('span', { cls: 'sr-only', text: label })
    ]);
  }

  function noteCustomerWrote(c, ms) {
    if (ms && !isNaN(ms) && (!c.customerWroteAt || ms > c.customerWroteAt)) c.customerWroteAt = ms;
  }

  // Time left to reply on Messenger (24 h, or 7 days with the HUMAN_AGENT
  // tag, after the customer's last message), by the server's clock.
  function replyWindow(c) {
    if (c.channel !== 'messenger' || !S.me.replyWindowMs || !c.customerWroteAt) return null;
    var left = c.customerWroteAt + S.me.replyWindowMs - serverNow();
    return { left: left, closed: left <= 0, warn: left > 0 && left <= 3600000 };
  }

  function fmtLeft(ms) {
    var min = Math.max(1, Math.ceil(ms / 60000));
    var d = Math.floor(min / 1440), h = Math.floor((min % 1440) / 60), m = min % 60;
    // Days from two on (a 24 h window reads "24 h 0 min", not "1 d 0 h").
    if (min >= 2880) return t('durationDaysHours', { d: d, h: h });
    h = Math.floor(min / 60);
    if (h > 0) return t('durationHoursMinutes', { h: h, m: m });
    return t('durationMinutes', { m: m });
  }

  function renderReplyWindow(c, win) {
    var p = $('reply-window');
    var open = ['active', 'conference_requested', 'conference'].indexOf(phaseOf(c)) >= 0;
    if (!win || !open) { p.hidden = true; p.textContent = ''; return; }
    var text = win.closed ? t('replyWindowClosed') : t('replyWindowLeft', { left: fmtLeft(win.left) });
    var state = win.closed ? 'closed' : win.warn ? 'warn' : 'open';
    p.hidden = false;
    if (p.textContent !== text) p.textContent = text;
    if (p.dataset.state !== state) p.dataset.state = state;
  }

  function renderTyping() {
    var c = S.selected !== null ? S.convs.get(S.selected) : null;
    var on = !!(c && c.typingUntil && c.typingUntil > Date.now());
    var p = $('typing');
    p.hidden = !on;
    p.textContent = on ? t('customerTyping', { name: c.customerName || t('customer') }) : '';
  }

  // Tell the customer the agent is typing, at most every few seconds.
  function signalTyping() {
    var c = S.convs.get(S.selected);
    if (!c || !isMine(c) || !$('compose').value.trim()) return;
    var now = Date.now();
    if (c.typingSentAt && now - c.typingSentAt < TYPING_EVERY_MS) return;
    c.typingSentAt = now;
    api('POST', '/api/conversations/' + c.id + '/typing', {});
  }

  function tick() {
    renderTyping();
    var sel = S.selected !== null ? S.convs.get(S.selected) : null;
    if (sel) {
      var win = replyWindow(sel);
      // The window just closed: the composer is disabled with it.
      if (!!(win && win.closed) !== !!sel.windowClosed) renderPane();
      else renderReplyWindow(sel, win);
    }
    var now = serverNow();
    document.querySelectorAll('[data-since]').forEach(function (e) {
      var since = Number(e.dataset.since);
      if (since) e.textContent = fmtElapsed(now - since);
    });
  }

  // ---- composer ----------------------------------------------------------

  function updateCounter() {
    var n = charCount($('compose').value);
    var counter = $('counter');
    counter.textContent = n + ' / ' + MAX_CHARS;
    counter.classList.toggle('over', n > MAX_CHARS);
    counter.setAttribute('aria-label', t('counterLabel', { n: n, max: MAX_CHARS }));
  }

  // ---- Canned responses: `/` in an empty composer opens the list ---------

  function cannedQuery() {
    var m = /^\/([^\n]*)$/.exec($('compose').value);
    return m ? m[1].trim().toLowerCase() : null;
  }

  function closeCanned() {
    S.canned.open = false;
    $('canned').hidden = true;
    clear($('canned'));
  }

  function updateCanned() {
    var c = S.selected !== null ? S.convs.get(S.selected) : null;
    var q = c && isMine(c) ? cannedQuery() : null;
    if (q === null) { closeCanned(); return; }
    if (!c.responses) {
      if (!c.responsesLoading) {
        c.responsesLoading = true;
        api('GET', '/api/responses?conversation=' + c.id).then(function (r) {
          c.responsesLoading = false;
          c.responses = r.status === 200 && r.body && Array.isArray(r.body.responses) ? r.body.responses : [];
          if (S.selected === c.id) updateCanned();
        });
      }
      return;
    }
    var shown = c.responses.filter(function (r) {
      var hay = (String(r.title) + ' ' + String(r.code) + ' ' + String(r.text)).toLowerCase();
      return !q || hay.indexOf(q) >= 0;
    });
    S.canned = { open: true, items: shown, active: Math.min(S.canned.active || 0, Math.max(shown.length - 1, 0)) };
    var list = $('canned');
    clear(list);
    if (!shown.length) {
      list.appendChild(el('li', { cls: 'canned-empty', text: t('noCanned') }));
    }
    shown.forEach(function (r, i) {
      var li = el('li', { cls: 'canned-item' + (i === S.canned.active ? ' active' : ''), attrs: { role: 'option', 'aria-selected': i === S.canned.active ? 'true' : 'false', 'data-code': r.code } }, [
        el('span', { cls: 'canned-title', text: r.title }),
        el('span', { cls: 'canned-text', text: r.text })
      ]);
      li.addEventListener('mousedown', function (ev) { ev.preventDefault(); chooseCanned(i); });
      list.appendChild(li);
    });
    list.hidden = false;
  }

  function chooseCanned(i) {
    var r = S.canned.items[i];
    if (!r) return;
    var box = $('compose');
    box.value = String(r.text);
    closeCanned();
    onComposeInput();
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  function cannedKey(ev) {
    if (!S.canned.open) return false;
    var n = S.canned.items.length;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (n) S.canned.active = (S.canned.active + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      updateCanned();
      return true;
    }
    if ((ev.key === 'Enter' || ev.key === 'Tab') && n && !ev.isComposing) {
      ev.preventDefault();
      chooseCanned(S.canned.active);
      return true;
    }
    if (ev.key === 'Escape') {
      ev.preventDefault();
      closeCanned();
      return true;
    }
    return false;
  }

  function onComposeInput() {
    var c = S.convs.get(S.selected);
    var text = $('compose').value;
    if (!S.canned.open) S.canned.active = 0;
    if (c) {
      c.draft = text;
      var n = charCount(text);
      var over = n > MAX_CHARS;
      var wasOver = $('counter').classList.contains('over');
      if (over && !wasOver) c.error = t('tooLong', { max: MAX_CHARS });
      if (!over) c.error = '';
      $('compose-error').textContent = c.error;
    }
    updateCounter();
    updateCanned();
    signalTyping();
  }

  function onComposeKey(ev) {
    if (cannedKey(ev)) return;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  }

  // Send an undelivered reply again: the text as the agent typed it when
  // this page sent it (the bubble may show it masked); otherwise it goes
  // back to the composer for the agent to check and send.
  function retrySend(c, m, button) {
    var raw = c.rawSent && c.rawSent.get(m.text);
    var files = (m.attachments || []).filter(function (a) { return a.id; }).map(function (a) { return { id: a.id, name: a.name || a.id }; });
    if (raw === undefined) {
      select(c.id, true);
      $('compose').value = m.text;
      c.pendingFiles = files;
      onComposeInput();
      renderAll();
      return;
    }
    button.disabled = true;
    var body = { text: raw };
    if (files.length) body.attachments = files.map(function (f) { return f.id; });
    api('POST', '/api/conversations/' + c.id + '/messages', body).then(function (r) {
      if (r.status === 200) {
        m.retried = true;
        applyEvents(r);
        rememberSent(c, r, raw);
        if (S.rendered.conv === c.id) S.rendered.count = -1;
      } else {
        button.disabled = false;
        toast(errorText(r), 'error');
      }
      renderAll();
    });
  }

  // What the agent typed, by the text its message event shows, for Retry.
  function rememberSent(c, r, raw) {
    if (!c.rawSent) c.rawSent = new Map();
    ((r.body && r.body.events) || []).forEach(function (ev) {
      if (ev && ev.type === 'message' && ev.from === 'agent' && typeof ev.text === 'string') c.rawSent.set(ev.text, raw);
    });
  }

  function send(ev) {
    if (ev) ev.preventDefault();
    var id = S.selected;
    var c = S.convs.get(id);
    var text = $('compose').value;
    var files = c ? (c.pendingFiles || []) : [];
    if (!c || (!text.trim() && !files.length) || $('send').disabled) return;
    $('send').disabled = true;
    var body = { text: text };
    if (files.length) body.attachments = files.map(function (f) { return f.id; });
    api('POST', '/api/conversations/' + id + '/messages', body).then(function (r) {
      $('send').disabled = false;
      if (r.status === 200) {
        c.draft = '';
        c.error = '';
        c.pendingFiles = [];
        if (S.selected === id) $('compose').value = '';
        applyEvents(r);
        rememberSent(c, r, text);
      } else {
        // The server's words, e.g. "message is longer than 1000 characters (1001)".
        c.error = errorText(r);
      }
      renderAll();
      if (S.selected === id) $('compose').focus();
    });
  }

  // ---- attachments of a reply -------------------------------------------
  // A picture or a PDF the agent picks is uploaded at once for the selected
  // conversation (the server checks its content and size); it goes with
  // the next reply, with or without text, and shows in the agent's bubble.

  var MAX_UPLOAD = 10 * 1024 * 1024;

  function attachFile() {
    var input = $('attach-file');
    var file = input.files && input.files[0];
    input.value = '';
    var id = S.selected;
    var c = S.convs.get(id);
    if (!file || !c) return;
    if (file.size > MAX_UPLOAD) { c.error = t('fileTooLarge'); renderAll(); return; }
    c.error = '';
    $('compose-error').textContent = t('attaching', { name: file.name });
    fetch('/api/conversations/' + id + '/attachments?name=' + encodeURIComponent(file.name), {
      method: 'POST',
      headers: { 'Authorization': 'Bearer ' + (S.session ? S.session.token : ''), 'Content-Type': 'application/octet-stream', 'Accept': 'application/json' },
      body: file,
      cache: 'no-store'
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (b) { return { status: resp.status, body: b }; });
    }, function () { return { status: 0, body: null }; }).then(function (r) {
      if (r.status === 201 && r.body && typeof r.body.id === 'string') {
        if (!c.pendingFiles) c.pendingFiles = [];
        c.pendingFiles.push({ id: r.body.id, name: r.body.name || file.name });
        c.error = '';
      } else {
        c.error = errorText(r);
      }
      renderAll();
    });
  }

  function renderPendingFiles(c) {
    var list = $('pending-files');
    while (list.firstChild) list.removeChild(list.firstChild);
    var files = (c && c.pendingFiles) || [];
    list.hidden = !files.length;
    files.forEach(function (f, i) {
      var li = el('li', { text: '📎 ' + f.name + ' ' });
      var remove = el('button', { cls: 'btn btn-small', text: '×', attrs: { type: 'button', 'aria-label': t('removeAttachment', { name: f.name }) } });
      remove.addEventListener('click', function () { c.pendingFiles.splice(i, 1); renderAll(); });
      li.appendChild(remove);
      list.appendChild(li);
    });
  }

  // ---- actions -----------------------------------------------------------

  function action(path, okMessageKey) {
    var id = S.selected;
    if (id === null) return Promise.resolve(null);
    return api('POST', '/api/conversations/' + id + path, {}).then(function (r) {
      if (r.status !== 200) {
        toast(errorText(r), 'error');
        return r;
      }
      applyEvents(r);
      if (okMessageKey) toast(t(okMessageKey), 'info');
      renderAll();
      return r;
    });
  }

  // Transfer and conference dialogs share the directory list code.
  var picker = {
    transfer: { dialog: 'transfer-dialog', list: 'transfer-list', search: 'transfer-search', error: 'transfer-error' },
    conference: { dialog: 'conference-dialog', list: 'conference-list', search: 'conference-search', error: 'conference-error' }
  };

  function transferKind() {
    return $('transfer-kind-agent').checked ? 'agent' : 'queue';
  }

  function fetchDirectory(which) {
    var p = picker[which];
    var list = $(p.list);
    list.setAttribute('aria-busy', 'true');
    var q = $(p.search).value.trim();
    return api('GET', '/api/directory' + (q ? '?search=' + encodeURIComponent(q) : '')).then(function (r) {
      list.removeAttribute('aria-busy');
      if (r.status !== 200 || !r.body) {
        $(p.error).textContent = errorText(r);
        return;
      }
      $(p.error).textContent = '';
      S.directory = { queues: r.body.queues || [], agents: r.body.agents || [] };
      S.directory.agents.forEach(function (a) { S.names.set(a.id, a.name || a.id); });
      renderPicker(which);
    });
  }

  function renderPicker(which) {
    var p = picker[which];
    var list = $(p.list);
    var prev = list.querySelector('input:checked');
    var prevValue = prev ? prev.value : null;
    clear(list);
    var needle = $(p.search).value.trim().toLowerCase();
    var kind = which === 'transfer' ? transferKind() : 'agent';
    var items = kind === 'queue' ? S.directory.queues : S.directory.agents;
    var shown = items.filter(function (it) {
      return !needle || String(it.name || '').toLowerCase().indexOf(needle) >= 0 || String(it.id).toLowerCase().indexOf(needle) >= 0;
    });
    if (shown.length === 0) {
      list.appendChild(el('p', { cls: 'muted empty-list', text: t('nothingFound') }));
      return;
    }
    shown.forEach(function (it) {
      var inputId = which + '-opt-' + kind + '-' + it.id;
      var disabled = kind === 'agent' && !it.available;
      var input = el('input', {
        attrs: { type: 'radio', name: which + '-target', value: it.id, id: inputId, disabled: disabled }
      });
      if (prevValue === it.id && !disabled) input.checked = true;
      var status = kind === 'queue'
        ? el('span', { cls: 'pick-status', text: t('waiting', { n: it.waiting || 0 }) })
        : el('span', { cls: 'pick-status state-' + it.state, text: stateLabel(it.state, it.reason) + (it.available ? '' : ' · ' + t('notAvailable')) });
      var label = el('label', { cls: 'pick-item' + (disabled ? ' disabled' : ''), attrs: { for: inputId, 'data-id': it.id } }, [
        input,
        kind === 'agent' ? el('span', { cls: 'state-dot', attrs: { 'data-state': it.state, 'aria-hidden': 'true' } }) : null,
        el('span', { cls: 'pick-name', text: it.name || it.id }),
        status
      ]);
      list.appendChild(label);
    });
  }

  function openPicker(which) {
    var p = picker[which];
    $(p.search).value = '';
    $(p.error).textContent = '';
    clear($(p.list));
    renderPicker(which);
    $(p.dialog).showModal();
    $(p.search).focus();
    fetchDirectory(which);
  }

  function submitPicker(which) {
    var p = picker[which];
    var chosen = $(p.list).querySelector('input:checked');
    if (!chosen) {
      $(p.error).textContent = t(which === 'transfer' ? 'pickTarget' : 'pickAgent');
      return;
    }
    var id = S.selected;
    var body;
    var path;
    if (which === 'transfer') {
      body = transferKind() === 'queue' ? { queue: chosen.value } : { agent: chosen.value };
      path = '/transfer';
    } else {
      body = { agent: chosen.value };
      path = '/conference';
    }
    api('POST', '/api/conversations/' + id + path, body).then(function (r) {
      if (r.status !== 200) {
        $(p.error).textContent = errorText(r);
        return;
      }
      $(p.dialog).close();
      applyEvents(r);
      renderAll();
    });
  }

  function openWrapup(id) {
    var c = S.convs.get(id);
    if (!c || !c.wrapup) return;
    ['transfer-dialog', 'conference-dialog'].forEach(function (d) { if ($(d).open) $(d).close(); });
    if ($('login-dialog').open) return;
    var d = $('wrapup-dialog');
    d.dataset.conversation = String(id);
    $('wrapup-for').textContent = t('wrapupFor', { name: c.customerName || t('customer') });
    $('wrapup-search').value = '';
    $('wrapup-error').textContent = '';
    renderWrapup();
    if (!d.open) d.showModal();
    $('wrapup-search').focus();
  }

  function renderWrapup() {
    var d = $('wrapup-dialog');
    var c = S.convs.get(Number(d.dataset.conversation));
    var list = $('wrapup-list');
    var prev = list.querySelector('input:checked');
    var prevValue = prev ? prev.value : null;
    clear(list);
    if (!c || !c.wrapup) return;
    var needle = $('wrapup-search').value.trim().toLowerCase();
    var shown = c.wrapup.filter(function (r) {
      return !needle || String(r.label).toLowerCase().indexOf(needle) >= 0 || String(r.code).toLowerCase().indexOf(needle) >= 0;
    });
    if (shown.length === 0) list.appendChild(el('p', { cls: 'muted empty-list', text: t('nothingFound') }));
    shown.forEach(function (r) {
      var inputId = 'wrapup-opt-' + r.code;
      var input = el('input', { attrs: { type: 'radio', name: 'wrapup-reason', value: r.code, id: inputId } });
      if (prevValue === r.code || shown.length === 1) input.checked = true;
      list.appendChild(el('label', { cls: 'pick-item', attrs: { for: inputId, 'data-id': r.code } }, [
        input, el('span', { cls: 'pick-name', text: r.label || r.code })
      ]));
    });
  }

  function submitWrapup() {
    var d = $('wrapup-dialog');
    var id = Number(d.dataset.conversation);
    var chosen = $('wrapup-list').querySelector('input:checked');
    if (!chosen) {
      $('wrapup-error').textContent = t('pickReason');
      return;
    }
    $('wrapup-submit').disabled = true;
    api('POST', '/api/conversations/' + id + '/wrapup', { reason: chosen.value }).then(function (r) {
      $('wrapup-submit').disabled = false;
      if (r.status !== 200) {
        $('wrapup-error').textContent = errorText(r);
        return;
      }
      d.close();
      applyEvents(r);
      if (S.convs.has(id)) dropConv(id);
      renderAll();
      toast(t('wrapupDone'), 'info');
    });
  }

  // ---- toasts ------------------------------------------------------------

  function toast(text, kind) {
    var box = $('toasts');
    var item = el('div', { cls: 'toast toast-' + (kind || 'info'), attrs: { role: kind === 'error' || kind === 'warn' ? 'alert' : null } }, [
      el('span', { text: text })
    ]);
    var close = el('button', { cls: 'toast-close', text: '×', attrs: { type: 'button', 'aria-label': t('dismiss') } });
    close.addEventListener('click', function () { item.remove(); });
    item.appendChild(close);
    box.appendChild(item);
    while (box.children.length > 4) box.firstChild.remove();
    setTimeout(function () { item.remove(); }, kind === 'error' ? 15000 : 6000);
  }

  // ---- wiring ------------------------------------------------------------

  function wire() {
    $('login-form').addEventListener('submit', login);
    $('login-dialog').addEventListener('cancel', function (ev) { ev.preventDefault(); });
    $('logout').addEventListener('click', logout);
    $('state-select').addEventListener('change', changeState);
    $('rona-available').addEventListener('click', function () { setState({ state: 'available' }); });
    $('login-lang').addEventListener('change', function () {
      $('lang').value = $('login-lang').value;
      $('lang').dispatchEvent(new Event('change'));
    });
    $('lang').addEventListener('change', function () {
      I18N.setLang($('lang').value);
      $('login-lang').value = $('lang').value;
      $('login-message').textContent = S.loginMessage ? t(S.loginMessage) : '';
      if (!$('session-banner').hidden) $('session-banner').textContent = t('sessionExpired');
      setConn($('conn').dataset.state);
      renderAll();
      if ($('wrapup-dialog').open) renderWrapup();
      ['transfer', 'conference'].forEach(function (w) { if ($(picker[w].dialog).open) renderPicker(w); });
    });

    $('composer').addEventListener('submit', send);
    $('attach-file').addEventListener('change', attachFile);
    $('compose').addEventListener('input', onComposeInput);
    $('compose').addEventListener('keydown', onComposeKey);
    $('compose').addEventListener('blur', closeCanned);

    $('btn-transfer').addEventListener('click', function () { openPicker('transfer'); });
    $('btn-conference').addEventListener('click', function () { openPicker('conference'); });
    $('btn-end').addEventListener('click', function () { action('/end'); });
    $('btn-end-conference').addEventListener('click', function () { action('/conference/end'); });
    $('btn-leave-conference').addEventListener('click', function () { action('/conference/leave'); });
    $('btn-wrapup').addEventListener('click', function () { if (S.selected !== null) openWrapup(S.selected); });

    ['transfer', 'conference'].forEach(function (w) {
      var p = picker[w];
      $(p.search).addEventListener('input', function () { renderPicker(w); });
      $(w + '-refresh').addEventListener('click', function () { fetchDirectory(w); });
      $(w + '-submit').addEventListener('click', function () { submitPicker(w); });
    });
    $('transfer-kind-queue').addEventListener('change', function () { renderPicker('transfer'); });
    $('transfer-kind-agent').addEventListener('change', function () { renderPicker('transfer'); });
    $('wrapup-search').addEventListener('input', renderWrapup);
    $('wrapup-submit').addEventListener('click', submitWrapup);
    document.querySelectorAll('dialog [data-close]').forEach(function (b) {
      b.addEventListener('click', function () { b.closest('dialog').close(); });
    });
    // Enter in a search field picks nothing by accident.
    ['transfer-search', 'conference-search', 'wrapup-search'].forEach(function (id) {
      $(id).addEventListener('keydown', function (ev) { if (ev.key === 'Enter') ev.preventDefault(); });
    });
    window.addEventListener('online', function () {
      if (S.session && S.session.token && !S.ws) connect();
    });
  }

  function init() {
    $('lang').value = I18N.lang();
    I18N.apply(document);
    wire();
    setConn('offline');
    renderAll();
    setInterval(tick, 1000);
    var saved = loadSession();
    if (saved) {
      S.session = saved;
      start();
    } else {
      showLogin(null);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
