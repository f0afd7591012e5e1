// Switchboard customer web chat (/chat/{tenant}). Plain JavaScript.
// The first message goes to POST /channels/webchat/{tenant}/messages without
// a token; the server answers with the visitor's token, kept for this tab's
// session (sessionStorage) and sent as `Authorization: Bearer` with later
// messages. The agents' replies and notices arrive live on the WebSocket
// GET /channels/webchat/{tenant}/events?visitor_token=T, opened once the
// visitor has a token. "Leave the chat" ends a waiting conversation with
// POST /channels/webchat/{tenant}/leave (one an agent has is the agent's
// to end). All text reaches the page through textContent only.
(function () {
  'use strict';

  var I18N = window.SwitchboardI18n;
  var t = I18N.t;
  var HISTORY_MAX = 200;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 10000;
  var MAX_UPLOAD = 10 * 1024 * 1024; // the server's limit, checked again there
  var TYPING_EVERY_MS = 3000;  // how often the visitor's typing is signalled
  var TYPING_SHOWN_MS = 6000;  // how long an agent's typing signal is shown
  var typingTimer = null;
  var typingSentAt = 0;
  var unread = false;        // an agent message arrived since the last read mark
  var left = null;           // the conversation the visitor left (already said)

  function $(id) { return document.getElementById(id); }

  var parts = location.pathname.split('/');
  var tenant = decodeURIComponent(parts[2] || '');
  var base = '/channels/webchat/' + encodeURIComponent(tenant);
  var keys = {
    token: 'switchboard.visitorToken.' + tenant,
    name: 'switchboard.visitorName.' + tenant,
    history: 'switchboard.chat.' + tenant
  };

  // The token and the conversation belong to this tab's session; the
  // name the visitor typed is remembered across sessions.
  function storeIn(area, key, value) {
    try {
      if (value === null) window[area].removeItem(key);
      else window[area].setItem(key, value);
    } catch (e) { /* storage off: this page only */ }
  }

  function loadFrom(area, key) {
    try { return window[area].getItem(key); } catch (e) { return null; }
  }

  var token = loadFrom('sessionStorage', keys.token);

  var history = [];
  try { history = JSON.parse(loadFrom('sessionStorage', keys.history) || '[]'); } catch (e) { history = []; }
  if (!Array.isArray(history)) history = [];

  var ws = null;
  var backoff = BACKOFF_MIN;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function initials(name) {
    var words = String(name || '').split(/\s+/).filter(Boolean);
    if (!words.length) return '?';
    var a = Array.from(words[0])[0] || '';
    var b = words.length > 1 ? (Array.from(words[words.length - 1])[0] || '') : '';
    return (a + b).toUpperCase();
  }

  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString(I18N.lang(), { hour: '2-digit', minute: '2-digit' });
  }

  // One entry of the log: {kind: 'me'|'agent'|'notice', author, text, at}
  // or a notice given by key (translated when drawn).
  function item(entry) {
    if (entry.kind === 'notice') {
      var li = el('li', 'msg msg-system');
      li.appendChild(el('p', 'text', entry.key ? t(entry.key, entry.vars) : entry.text));
      li.appendChild(el('time', null, fmtTime(entry.at)));
      return li;
    }
    var mine = entry.kind === 'me';
    var row = el('li', 'msg ' + (mine ? 'msg-mine' : 'msg-agent-reply'));
    if (!mine) {
      var av = el('span', 'avatar avatar-agent', initials(entry.author));
      av.setAttribute('aria-hidden', 'true');
      row.appendChild(av);
    }
    var bubble = el('div', 'bubble');
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'author', mine ? t('you') : entry.author));
    meta.appendChild(el('time', null, fmtTime(entry.at)));
    bubble.appendChild(meta);
    if (entry.text) bubble.appendChild(el('p', 'text', entry.text));
    if (entry.file) bubble.appendChild(el('p', 'att-file', '📎 ' + entry.file));
    (Array.isArray(entry.files) ? entry.files : []).forEach(function (f) { bubble.appendChild(agentFile(f)); });
    row.appendChild(bubble);
    return row;
  }

  // The files an agent's reply carries: only this channel's own
  // addresses (`…/attachments/{id}`), fetched with this visitor's token.
  function agentFiles(list) {
    if (!Array.isArray(list)) return [];
    return list.filter(function (a) {
      return a && typeof a.url === 'string' && a.url.indexOf(base + '/attachments/') === 0;
    }).map(function (a) {
      return { url: a.url, image: a.type === 'image', name: typeof a.name === 'string' ? a.name : '' };
    });
  }

  // A picture shown inline, a document as a download link.
  function agentFile(f) {
    var src = f.url + '?visitor_token=' + encodeURIComponent(token || '');
    var p = el('p', 'att-agent');
    if (f.image) {
      var img = el('img', 'att-picture');
      img.src = src;
      img.alt = f.name || t('picture');
      p.appendChild(img);
    } else {
      var a = el('a', 'att-download', '📎 ' + (f.name || t('document')));
      a.href = src;
      a.setAttribute('download', f.name || 'document');
      p.appendChild(a);
    }
    return p;
  }

  function add(entry) {
    history.push(entry);
    if (history.length > HISTORY_MAX) history = history.slice(-HISTORY_MAX);
    storeIn('sessionStorage', keys.history, JSON.stringify(history));
    var log = $('chat-log');
    log.appendChild(item(entry));
    log.scrollTop = log.scrollHeight;
  }

  function redraw() {
    var log = $('chat-log');
    while (log.firstChild) log.removeChild(log.firstChild);
    history.forEach(function (e) { log.appendChild(item(e)); });
    log.scrollTop = log.scrollHeight;
  }

  function setConn(state) {
    var c = $('chat-conn');
    c.dataset.state = state;
    c.textContent = state === 'online' ? t('chatConnected')
      : state === 'ready' ? t('chatReady')
      : state === 'offline' ? t('offline') : t('reconnecting');
  }

  function connect() {
    if (!token || ws) return;
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    try {
      ws = new WebSocket(proto + '//' + location.host + base + '/events?visitor_token=' + encodeURIComponent(token));
    } catch (e) {
      retry();
      return;
    }
    ws.onopen = function () { backoff = BACKOFF_MIN; setConn('online'); unread = true; markRead(); };
    ws.onmessage = function (m) {
      var f;
      try { f = JSON.parse(m.data); } catch (e) { return; }
      var now = Date.now();
      switch (f.type) {
        case 'message':
          if (f.from === 'agent') {
            showTyping(null);
            add({ kind: 'agent', author: f.author || t('agent'), text: f.text, files: agentFiles(f.attachments), at: now });
            unread = true;
            markRead();
          }
          break;
        case 'typing':
          showTyping(typeof f.agent === 'string' ? f.agent : t('agent'));
          break;
        case 'agent_joined':
          add({ kind: 'notice', key: 'agentJoined', vars: { name: f.agent }, at: now });
          break;
        case 'agent_left':
          add({ kind: 'notice', key: 'agentLeft', vars: { name: f.agent }, at: now });
          break;
        case 'conversation_ended':
          showLeave(false);
          // The visitor's own leave (from this page or another of its tabs).
          if (f.reason === 'customer_left') { markLeft(f.conversation); break; }
          add({ kind: 'notice', key: 'chatEnded', at: now });
          break;
        case 'notice':
          add({ kind: 'notice', text: f.text, at: now });
          break;
        default:
          break;
      }
    };
    ws.onclose = function () { ws = null; retry(); };
  }

  // "Alice is typing…" for a few seconds (repeated while the agent types);
  // `null` hides it.
  function showTyping(name) {
    var p = $('chat-typing');
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    p.hidden = !name;
    p.textContent = name ? t('agentTyping', { name: name }) : '';
    if (name) typingTimer = setTimeout(function () { showTyping(null); }, TYPING_SHOWN_MS);
  }

  // Tell the server the visitor has read the agents' messages: only while
  // the page is visible (a tab in the background has not been read), once
  // per new message; the agent's bubbles then show "read".
  function markRead() {
    if (!unread || document.visibilityState !== 'visible') return;
    if (!ws || ws.readyState !== 1) return;
    try { ws.send(JSON.stringify({ type: 'read' })); unread = false; } catch (e) { /* closed meanwhile */ }
  }

  // Tell the agent the visitor is typing, at most every few seconds.
  function signalTyping() {
    if (!ws || ws.readyState !== 1 || !$('chat-input').value.trim()) return;
    var now = Date.now();
    if (now - typingSentAt < TYPING_EVERY_MS) return;
    typingSentAt = now;
    try { ws.send(JSON.stringify({ type: 'typing' })); } catch (e) { /* closed meanwhile */ }
  }

  function retry() {
    if (!token) { setConn('ready'); return; }
    setConn('reconnecting');
    var delay = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
    setTimeout(connect, delay);
  }

  // POST one message, as this tab's visitor when it has a token.
  function post(body) {
    var headers = { 'Content-Type': 'application/json', 'Accept': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch(base + '/messages', {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (b) { return { status: resp.status, body: b }; });
    }, function () {
      return { status: 0, body: null };
    });
  }

  // The Leave button: while the visitor may have an open chat.
  function showLeave(on) {
    $('chat-leave').hidden = !on;
  }

  // "You left the chat", once per conversation (the answer to the leave
  // and the socket's end of the conversation both say it).
  function markLeft(id) {
    showLeave(false);
    if (typeof id === 'number' && left === id) return;
    left = typeof id === 'number' ? id : null;
    add({ kind: 'notice', key: 'chatLeft', at: Date.now() });
  }

  // The visitor ends the chat (POST …/leave): a waiting conversation is
  // dropped; one an agent already has is the agent's to end (409).
  function leave() {
    if (!token) return;
    $('chat-leave').disabled = true;
    $('chat-error').textContent = '';
    fetch(base + '/leave', {
      method: 'POST',
      headers: { 'Accept': 'application/json', 'Authorization': 'Bearer ' + token }
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (b) { return { status: resp.status, body: b }; });
    }, function () {
      return { status: 0, body: null };
    }).then(function (r) {
      $('chat-leave').disabled = false;
      if (r.status === 200 || r.status === 404) {
        // 404: nothing open any more (it ended meanwhile): left all the same.
        markLeft(r.body && r.body.conversation);
      } else if (r.status === 409) {
        $('chat-error').textContent = t('leaveRefused');
      } else if (r.status === 401) {
        forgetToken();
        showLeave(false);
      } else {
        $('chat-error').textContent = r.status === 0 ? t('networkError')
          : (r.body && r.body.error) || t('httpError', { status: r.status });
      }
    });
  }

  // A token the server no longer knows (its secret was replaced): forget
  // it and write as a new visitor.
  function forgetToken() {
    token = null;
    storeIn('sessionStorage', keys.token, null);
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
  }

  function send(ev) {
    if (ev) ev.preventDefault();
    var input = $('chat-input');
    var text = input.value;
    if (!text.trim()) return;
    var name = $('chat-name').value.trim();
    storeIn('localStorage', keys.name, name);
    $('chat-send').disabled = true;
    $('chat-error').textContent = '';
    var body = { text: text };
    if (name) body.name = name;
    post(body).then(function (r) {
      if (r.status === 401 && token) {
        forgetToken();
        return post(body);
      }
      return r;
    }).then(function (r) {
      $('chat-send').disabled = false;
      if (r.status === 202) {
        input.value = '';
        if (r.body && typeof r.body.visitor_token === 'string') {
          token = r.body.visitor_token;
          storeIn('sessionStorage', keys.token, token);
        }
        add({ kind: 'me', text: text, at: Date.now() });
        showLeave(true);
        connect();
      } else {
        $('chat-error').textContent = r.status === 0 ? t('networkError')
          : (r.body && r.body.error) || t('httpError', { status: r.status });
      }
      input.focus();
    });
  }

  // Attach a picture or a PDF: upload it (the server checks what it is,
  // by its content, and its size), then send it as a message of its own.
  function attach() {
    var input = $('chat-file');
    var file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    $('chat-error').textContent = '';
    if (file.size > MAX_UPLOAD) { $('chat-error').textContent = t('fileTooLarge'); return; }
    var headers = { 'Content-Type': 'application/octet-stream', 'Accept': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    $('chat-send').disabled = true;
    fetch(base + '/attachments?name=' + encodeURIComponent(file.name), { method: 'POST', headers: headers, body: file })
      .then(function (resp) {
        return resp.json().catch(function () { return null; }).then(function (b) { return { status: resp.status, body: b }; });
      }, function () { return { status: 0, body: null }; })
      .then(function (r) {
        if (r.status !== 201 || !r.body || typeof r.body.id !== 'string') {
          $('chat-send').disabled = false;
          $('chat-error').textContent = r.status === 0 ? t('networkError')
            : (r.body && r.body.error) || t('httpError', { status: r.status });
          return;
        }
        if (typeof r.body.visitor_token === 'string') {
          token = r.body.visitor_token;
          storeIn('sessionStorage', keys.token, token);
        }
        var body = { attachments: [r.body.id] };
        var name = $('chat-name').value.trim();
        if (name) body.name = name;
        post(body).then(function (m) {
          $('chat-send').disabled = false;
          if (m.status === 202) {
            add({ kind: 'me', text: '', file: r.body.name || file.name, at: Date.now() });
            showLeave(true);
            connect();
          } else {
            $('chat-error').textContent = m.status === 0 ? t('networkError')
              : (m.body && m.body.error) || t('httpError', { status: m.status });
          }
        });
      });
  }

  function init() {
    $('lang').value = I18N.lang();
    I18N.apply(document);
    document.title = t('chatTitle');
    $('chat-name').value = loadFrom('localStorage', keys.name) || '';
    $('chat-form').addEventListener('submit', send);
    $('chat-file').addEventListener('change', attach);
    $('chat-leave').addEventListener('click', leave);
    $('chat-input').addEventListener('input', signalTyping);
    document.addEventListener('visibilitychange', markRead);
    $('chat-input').addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) send(ev);
    });
    $('lang').addEventListener('change', function () {
      I18N.setLang($('lang').value);
      document.title = t('chatTitle');
      setConn($('chat-conn').dataset.state);
      redraw();
    });
    redraw();
    if (token) {
      showLeave(true);
      setConn('connecting');
      connect();
    } else {
      // No socket until the first message brings a token.
      setConn('ready');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
