// The supervisors' console: a live view of the tenant's queues, agents and
// conversations over WS /api/supervisor/events (a one-time ticket opens
// it), and reports for a day with a chart (SVG built with DOM APIs) and
// CSV downloads. It uses the desktop's session (sessionStorage). Data
// reaches the page only through textContent.
(function () {
  'use strict';
  var I18N = window.SwitchboardI18n;
  I18N.extend({
    en: {
      backToDesktop: 'Desktop', queues: 'Queues', queue: 'Queue', waiting: 'Waiting',
      longestWait: 'Longest wait', offeredNow: 'Offered', agentsAvailable: 'Available',
      agentsBusy: 'Busy', agents: 'Agents', agent: 'Agent', inStateFor: 'For', load: 'Load',
      reports: 'Reports', perHour: 'Offered per hour (UTC)', day: 'Day', show: 'Show', csvQueues: 'CSV (queues)',
      csvAgents: 'CSV (agents)', offered: 'Offered', accepted: 'Accepted', dropped: 'Dropped',
      transferred: 'Transferred', waitAvg: 'Wait (avg)', waitP90: 'Wait (p90)',
      handleAvg: 'Handle (avg)', handled: 'Handled', handleTime: 'Handle time',
      noSession: 'Log in on the desktop first.', forbidden: 'The console is for supervisors and admins.',
      connected: 'Connected', offline: 'Offline', moreConversations: '… and {n} more conversations, not listed',
      actions: 'Actions', setAvailable: 'Available', setIdle: 'Idle', forceLogout: 'Log out',
      scripts: 'Scripts', generation: 'Generation', reload: 'Reload', file: 'File', role: 'Role', calls: 'Calls', errors: 'Errors', lastError: 'Last error', viewSource: 'Source', reloaded: 'Reloaded: generation {id}.', reloadRefused: 'Reload refused: the previous generation keeps serving.',
      shadow: 'Shadow policy {file} (since {since}): {decisions} decisions, {agreed} agreed with the live policy, {errors} errors.', noShadow: 'No shadow policy.',
      monitor: 'Monitor', join: 'Join', joined: 'Joined: write from the agent desktop (it shows the conversation).', move: 'Move', moveTo: 'Move to', close: 'Close', cancel: 'Cancel',
      closeReason: 'Reason shown to the agent', stopMonitoring: 'Stop monitoring',
      monitoring: 'Monitoring conversation #{id} (read only)', moveTitle: 'Conversation #{id}',
      closeTitle: 'Close conversation #{id}', done: 'Done.', ended: 'The conversation ended.',
      customer: 'Customer', system: 'System',
      administration: 'Administration', agentId: 'Id', name: 'Name', capacity: 'Capacity', skills: 'Skills',
      enabled: 'Enabled', newAgent: 'New agent', newQueue: 'New queue', queuesComma: 'Queues (comma separated)',
      skillsComma: 'Skills (comma separated)', roleAgent: 'Agent', roleSupervisor: 'Supervisor', roleAdmin: 'Admin',
      password: 'Password', save: 'Save', edit: 'Edit', disable: 'Disable', enable: 'Enable', yes: 'Yes', no: 'No',
      ronaTimeout: 'RONA timeout (s)', idleReasons: 'Idle reasons', idleReasonsHelp: 'One per line', saved: 'Saved.',
      abandoned: 'Abandoned', masking: 'Masking',
      maskingHelp: 'Mask sensitive customer data (cards, IBAN, e-mail, phone numbers) for what comes in from now on',
      confirmMaskOn: 'Turn masking on for every new message of this tenant?',
      confirmMaskOff: 'Turn masking off? Agents will then see customers’ card numbers, IBANs, e-mail addresses and phone numbers as written. This is recorded with your name.'
    },
    fr: {
      backToDesktop: 'Poste agent', queues: 'Files', queue: 'File', waiting: 'En attente',
      longestWait: 'Attente max.', offeredNow: 'Proposées', agentsAvailable: 'Disponibles',
      agentsBusy: 'Occupés', agents: 'Agents', agent: 'Agent', inStateFor: 'Depuis', load: 'Charge',
      reports: 'Rapports', perHour: 'Demandes par heure (UTC)', day: 'Jour', show: 'Afficher', csvQueues: 'CSV (files)',
      csvAgents: 'CSV (agents)', offered: 'Proposées', accepted: 'Acceptées', dropped: 'Perdues',
      transferred: 'Transférées', waitAvg: 'Attente (moy.)', waitP90: 'Attente (p90)',
      handleAvg: 'Traitement (moy.)', handled: 'Traitées', handleTime: 'Temps de traitement',
      noSession: 'Connectez-vous d’abord sur le poste agent.', forbidden: 'La console est réservée aux superviseurs et administrateurs.',
      connected: 'Connecté', offline: 'Hors ligne', moreConversations: '… et {n} autres conversations, non listées',
      actions: 'Actions', setAvailable: 'Disponible', setIdle: 'En pause', forceLogout: 'Déconnecter',
      scripts: 'Scripts', generation: 'Génération', reload: 'Recharger', file: 'Fichier', role: 'Rôle', calls: 'Appels', errors: 'Erreurs', lastError: 'Dernière erreur', viewSource: 'Source', reloaded: 'Rechargé : génération {id}.', reloadRefused: 'Rechargement refusé : la génération précédente reste en service.',
      shadow: 'Politique en observation {file} (depuis {since}) : {decisions} décisions, {agreed} identiques à la politique en service, {errors} erreurs.', noShadow: 'Aucune politique en observation.',
      monitor: 'Écouter', join: 'Rejoindre', joined: 'Conversation rejointe : écrivez depuis le poste agent (elle y apparaît).', move: 'Déplacer', moveTo: 'Déplacer vers', close: 'Clore', cancel: 'Annuler',
      closeReason: 'Motif montré à l’agent', stopMonitoring: 'Arrêter l’écoute',
      monitoring: 'Écoute de la conversation n° {id} (lecture seule)', moveTitle: 'Conversation n° {id}',
      closeTitle: 'Clore la conversation n° {id}', done: 'C’est fait.', ended: 'La conversation est terminée.',
      customer: 'Client', system: 'Système',
      administration: 'Administration', agentId: 'Identifiant', name: 'Nom', capacity: 'Capacité', skills: 'Compétences',
      enabled: 'Actif', newAgent: 'Nouvel agent', newQueue: 'Nouvelle file', queuesComma: 'Files (séparées par des virgules)',
      skillsComma: 'Compétences (séparées par des virgules)', roleAgent: 'Agent', roleSupervisor: 'Superviseur', roleAdmin: 'Administrateur',
      password: 'Mot de passe', save: 'Enregistrer', edit: 'Modifier', disable: 'Désactiver', enable: 'Réactiver', yes: 'Oui', no: 'Non',
      ronaTimeout: 'Délai RONA (s)', idleReasons: 'Motifs de pause', idleReasonsHelp: 'Un par ligne', saved: 'Enregistré.',
      abandoned: 'Abandons', masking: 'Masquage',
      maskingHelp: 'Masquer les données sensibles des clients (cartes, IBAN, e-mails, téléphones) pour ce qui arrive désormais',
      confirmMaskOn: 'Activer le masquage pour chaque nouveau message de ce client ?',
      confirmMaskOff: 'Désactiver le masquage ? Les agents verront alors les numéros de carte, IBAN, e-mails et téléphones des clients tels qu’écrits. Votre nom est enregistré avec ce changement.'
    }
  });
  var t = I18N.t;
  var $ = function (id) { return document.getElementById(id); };
  var session = null;
  try { session = JSON.parse(sessionStorage.getItem('switchboard.session') || 'null'); } catch (e) { session = null; }
  var last = null;       // the overview as last received (whole, then changed by diffs)
  var agentsById = {};   // its agents and open conversations, by id
  var convsById = {};
  var MAX_CONVERSATIONS = 200; // rows listed; the rest are counted ("N more")
  var renderPending = false;
  var socket = null;     // the console socket
  var monitored = null;  // the conversation monitored
  var target = null;     // the conversation of the move or close form
  var lastAt = 0;        // when it arrived (local ms), to age the durations

  function fail(key) {
    var b = $('console-error');
    b.textContent = t(key);
    b.hidden = false;
  }

  function api(method, path, body) {
    var init = { method: method, headers: { Authorization: 'Bearer ' + session.token } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init);
  }

  function fmt(key, id) { return t(key).replace('{id}', String(id)); }

  // A supervisor action: the server's answer, or its error, in the status line.
  function act(method, path, body) {
    var status = $('action-status');
    status.textContent = '';
    return api(method, path, body).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        status.textContent = r.ok ? t('done') : (b.error || String(r.status));
        return r.ok;
      });
    });
  }

  function button(label, cls, onClick) {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn ' + cls;
    b.dataset.action = label;
    b.textContent = t(label);
    b.addEventListener('click', onClick);
    return b;
  }

  function setState(agent, state) {
    act('PUT', '/api/supervisor/agents/' + encodeURIComponent(agent) + '/state', { state: state });
  }

  function showForm(form, id) {
    target = id;
    $('move-form').hidden = form !== 'move-form';
    $('close-form').hidden = form !== 'close-form';
    $('move-title').textContent = fmt('moveTitle', id);
    $('close-title').textContent = fmt('closeTitle', id);
    if (form === 'move-form') {
      var select = $('move-queue');
      select.replaceChildren();
      (last ? last.queues : []).forEach(function (q) {
        var o = document.createElement('option');
        o.value = q.id;
        o.textContent = q.name;
        select.appendChild(o);
      });
    } else {
      $('close-reason').value = '';
      $('close-reason').focus();
    }
  }

  function hideForms() {
    target = null;
    $('move-form').hidden = true;
    $('close-form').hidden = true;
  }

  function monitorLine(m) {
    var li = document.createElement('li');
    var from = document.createElement('span');
    from.className = 'from';
    from.textContent = m.from === 'agent' ? (m.author_name || m.author) : t(m.from === 'customer' ? 'customer' : 'system');
    var text = document.createElement('span');
    text.textContent = m.text;
    li.appendChild(from);
    li.appendChild(text);
    $('monitor-log').appendChild(li);
  }

  function startMonitor(id) {
    monitored = id;
    $('monitor-title').textContent = fmt('monitoring', id);
    $('monitor-log').replaceChildren();
    $('monitor').hidden = false;
    if (socket && socket.readyState === 1) socket.send(JSON.stringify({ type: 'monitor', conversation: id }));
  }

  function stopMonitor() {
    monitored = null;
    $('monitor').hidden = true;
    if (socket && socket.readyState === 1) socket.send(JSON.stringify({ type: 'unmonitor' }));
  }

  function onMonitor(ev) {
    if (ev.type === 'monitor_started') {
      $('monitor-log').replaceChildren();
      (ev.conversation.messages || []).forEach(monitorLine);
    } else if (ev.event.type === 'message') {
      monitorLine(ev.event);
    } else if (ev.event.type === 'message_redacted' && ev.event.messages) {
      $('monitor-log').replaceChildren();
      ev.event.messages.forEach(monitorLine);
    } else if (ev.event.type === 'conversation_ended' || ev.event.type === 'conversation_dropped') {
      monitorLine({ from: 'system', text: t('ended') });
    }
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    return m > 0 ? m + ' min ' + (s % 60) + ' s' : s + ' s';
  }

  function since(iso) {
    if (!iso || !last) return '';
    return duration(Date.parse(last.at) - Date.parse(iso) + (Date.now() - lastAt));
  }

  function row(tbody, cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      if (Array.isArray(c)) c.forEach(function (n) { td.appendChild(n); });
      else td.textContent = c === null || c === undefined ? '' : String(c);
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }

  function fill(id, rows, keys) {
    var tbody = $(id).querySelector('tbody');
    tbody.replaceChildren();
    rows.forEach(function (r, i) {
      row(tbody, r);
      if (keys) tbody.lastChild.dataset.id = String(keys[i]);
    });
  }

  function render() {
    if (!last) return;
    var age = Date.now() - lastAt;
    fill('queues', last.queues.map(function (q) {
      return [q.name, q.waiting, q.waiting ? duration(q.longest_wait_ms + age) : '', q.offered, q.agents_available, q.agents_busy];
    }));
    fill('agents', last.agents.map(function (a) {
      // Wire names (`logged_out`) to the desktop's labels (`loggedOut`).
      var key = a.state.replace(/_([a-z])/g, function (_, c) { return c.toUpperCase(); });
      var state = I18N.has(key) ? t(key) : a.state;
      if (a.reason) state += ' (' + a.reason + ')';
      var actions = [
        button('setAvailable', 'btn-quiet', function () { setState(a.id, 'available'); }),
        button('setIdle', 'btn-quiet', function () { setState(a.id, 'idle'); }),
        button('forceLogout', 'btn-danger', function () { setState(a.id, 'logged_out'); })
      ];
      return [a.name, state, since(a.since), a.load + '/' + a.capacity, a.conversations.join(', '), actions];
    }), last.agents.map(function (a) { return a.id; }));
    var shown = last.conversations.slice(0, MAX_CONVERSATIONS);
    var more = last.conversations.length - shown.length;
    $('convs-more').hidden = more <= 0;
    $('convs-more').textContent = more > 0 ? t('moreConversations').replace('{n}', String(more)) : '';
    fill('convs', shown.map(function (c) {
      var actions = [button('monitor', 'btn-quiet', function () { startMonitor(c.id); })];
      if (c.state === 'queued' || c.state === 'offered') {
        actions.push(button('move', 'btn-quiet', function () { showForm('move-form', c.id); }));
      }
      if (c.state === 'active' && c.agent !== session.agent) {
        // Joining makes the supervisor the third participant: they write
        // from the desktop, where the conversation appears.
        actions.push(button('join', 'btn-quiet', function () {
          act('POST', '/api/supervisor/conversations/' + c.id + '/join', {}).then(function (ok) {
            if (ok) $('action-status').textContent = t('joined');
          });
        }));
      }
      actions.push(button('close', 'btn-danger', function () { showForm('close-form', c.id); }));
      return [c.id, c.state, c.queue, c.agent || '', since(c.since), actions];
    }), shown.map(function (c) { return c.id; }));
  }

  // At most one render per animation frame, however many frames arrive.
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(function () { renderPending = false; render(); });
  }

  // The whole overview: the page's state from scratch.
  function onOverview(o) {
    agentsById = {};
    convsById = {};
    o.agents.forEach(function (a) { agentsById[a.id] = a; });
    o.conversations.forEach(function (c) { convsById[c.id] = c; });
    last = o;
    lastAt = Date.now();
    scheduleRender();
  }

  // What changed since the last frame: rows replaced by id, closed
  // conversations removed, every queue's figures anew.
  function onChanges(ev) {
    if (!last) return;
    ev.agents.forEach(function (a) { agentsById[a.id] = a; });
    ev.conversations.forEach(function (c) { convsById[c.id] = c; });
    ev.removed.forEach(function (id) { delete convsById[id]; });
    last = {
      at: ev.at,
      queues: ev.queues,
      agents: Object.keys(agentsById).sort().map(function (k) { return agentsById[k]; }),
      conversations: Object.keys(convsById).map(function (k) { return convsById[k]; })
        .sort(function (x, y) { return x.id - y.id; })
    };
    lastAt = Date.now();
    scheduleRender();
  }

  function connect() {
    api('POST', '/api/agent/events/ticket').then(function (r) { return r.json(); }).then(function (b) {
      var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      var ws = new WebSocket(proto + '//' + location.host + '/api/supervisor/events?ticket=' + encodeURIComponent(b.ticket));
      socket = ws;
      ws.onopen = function () {
        $('conn').dataset.state = 'online';
        $('conn').textContent = t('connected');
        if (monitored !== null) ws.send(JSON.stringify({ type: 'monitor', conversation: monitored }));
      };
      ws.onmessage = function (m) {
        var ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (ev.type === 'overview') onOverview(ev.overview);
        if (ev.type === 'overview_changes') onChanges(ev);
        if (ev.type === 'monitor_started' || ev.type === 'monitor') onMonitor(ev);
        if (ev.type === 'error') $('action-status').textContent = ev.error;
      };
      ws.onclose = function (e) {
        $('conn').dataset.state = 'offline';
        $('conn').textContent = t('offline');
        if (e.code !== 4001) setTimeout(connect, 2000);
      };
    }).catch(function () { setTimeout(connect, 2000); });
  }

  function period() {
    var day = $('report-day').value || new Date().toISOString().slice(0, 10);
    var from = new Date(day + 'T00:00:00Z');
    var to = new Date(from.getTime() + 86400000);
    return 'from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString());
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function svg(name, attrs) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  // Offered per queue and wrap-up reasons counted, as bars.
  function chart(queues) {
    var bars = [];
    queues.forEach(function (q) {
      bars.push([q.queue + ' · ' + t('offered'), q.offered]);
      Object.keys(q.wrapup_reasons).forEach(function (r) { bars.push([q.queue + ' · ' + r, q.wrapup_reasons[r]]); });
    });
    var max = Math.max.apply(null, [1].concat(bars.map(function (b) { return b[1]; })));
    var h = 22, w = 480;
    var root = svg('svg', { viewBox: '0 0 ' + w + ' ' + (bars.length * h + 4), role: 'img' });
    bars.forEach(function (b, i) {
      var len = Math.round((w - 220) * b[1] / max);
      var label = svg('text', { x: 0, y: i * h + 15 });
      label.textContent = b[0];
      root.appendChild(label);
      root.appendChild(svg('rect', { 'class': 'bar', x: 180, y: i * h + 4, width: len, height: h - 8 }));
      var n = svg('text', { x: 186 + len, y: i * h + 15 });
      n.textContent = String(b[1]);
      root.appendChild(n);
    });
    $('report-chart').replaceChildren(root);
  }

  // Volume (offered, bars) and average wait (labels) per hour of the day,
  // all queues together.
  function hourlyChart(queues) {
    var hours = [];
    for (var i = 0; i < 24; i++) hours.push({ offered: 0, accepted: 0, wait: 0 });
    queues.forEach(function (q) {
      (q.hours || []).forEach(function (h) {
        var i = new Date(h.start).getUTCHours();
        hours[i].offered += h.offered;
        hours[i].accepted += h.accepted;
        hours[i].wait += h.wait_avg_ms * h.accepted;
      });
    });
    var max = Math.max.apply(null, [1].concat(hours.map(function (h) { return h.offered; })));
    var w = 24 * 28, top = 18, height = 120;
    var root = svg('svg', { viewBox: '0 0 ' + w + ' ' + (height + top + 20), role: 'img', 'aria-label': t('perHour') });
    hours.forEach(function (h, i) {
      var len = Math.round(height * h.offered / max);
      var x = i * 28 + 4;
      var bar = svg('rect', { 'class': 'bar', x: x, y: top + height - len, width: 20, height: len, 'data-hour': i, 'data-offered': h.offered });
      var tip = svg('title', {});
      tip.textContent = String(i).padStart(2, '0') + ':00 — ' + t('offered') + ' ' + h.offered +
        (h.accepted ? ', ' + t('waitAvg') + ' ' + duration(Math.round(h.wait / h.accepted)) : '');
      bar.appendChild(tip);
      root.appendChild(bar);
      if (h.offered) {
        var n = svg('text', { x: x + 2, y: top + height - len - 4, 'class': 'bar-value' });
        n.textContent = String(h.offered);
        root.appendChild(n);
      }
      if (i % 3 === 0) {
        var label = svg('text', { x: x, y: top + height + 14 });
        label.textContent = String(i).padStart(2, '0') + 'h';
        root.appendChild(label);
      }
    });
    $('report-hours').replaceChildren(root);
  }

  function loadReports() {
    var p = period();
    api('GET', '/api/reports/queues?' + p).then(function (r) { return r.json(); }).then(function (b) {
      fill('report-queues', b.queues.map(function (q) {
        return [q.queue, q.offered, q.accepted, q.abandoned, q.dropped, q.rona, q.transferred,
          duration(q.wait_avg_ms), duration(q.wait_p90_ms), duration(q.handle_avg_ms)];
      }));
      chart(b.queues);
      hourlyChart(b.queues);
    });
    api('GET', '/api/reports/agents?' + p).then(function (r) { return r.json(); }).then(function (b) {
      fill('report-agents', b.agents.map(function (a) {
        return [a.agent, a.handled, duration(a.handle_ms), a.rona,
          duration(a.states_ms.available || 0), duration(a.states_ms.idle || 0)];
      }));
    });
  }

  function download(kind) {
    api('GET', '/api/reports/' + kind + '?' + period() + '&format=csv').then(function (r) { return r.blob(); }).then(function (blob) {
      var a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = kind + '.csv';
      document.body.appendChild(a);
      a.click();
      a.remove();
    });
  }

  // ---- scripts (tenant admins) -------------------------------------------

  function tenantPath(rest) {
    return '/admin/tenants/' + encodeURIComponent(session.tenant) + rest;
  }

  function errorLine(e) {
    return (e.file || '?') + (e.line ? ':' + e.line : '') + ': ' + (e.message || '');
  }

  // The live generation's scripts with their calls and errors; shown only
  // when the server lets this session administer the tenant.
  function loadScripts() {
    api('GET', tenantPath('/scripts')).then(function (r) {
      if (r.status !== 200) { $('scripts-section').hidden = true; return null; }
      return r.json();
    }).then(function (b) {
      if (!b) return;
      $('scripts-section').hidden = false;
      $('scripts-generation').textContent = String(b.generation);
      // The candidate policy tried beside the live one (docs/lua.md, shadow).
      var sh = b.shadow;
      $('scripts-shadow').textContent = sh
        ? t('shadow').replace('{file}', sh.routing).replace('{since}', sh.since)
          .replace('{decisions}', String(sh.decisions)).replace('{agreed}', String(sh.agreed))
          .replace('{errors}', String(sh.errors))
        : t('noShadow');
      fill('scripts', b.scripts.map(function (sc) {
        var last = sc.last_errors && sc.last_errors.length ? errorLine(sc.last_errors[sc.last_errors.length - 1]) : '';
        var view = button('viewSource', 'btn-quiet', function () { showSource(sc.file); });
        return [sc.file, sc.role, sc.calls, sc.errors, last, [view]];
      }), b.scripts.map(function (sc) { return sc.file; }));
    });
  }

  function showSource(file) {
    api('GET', tenantPath('/scripts/source?file=' + encodeURIComponent(file))).then(function (r) {
      return r.json().then(function (b) { return { ok: r.ok, b: b }; });
    }).then(function (x) {
      $('source-title').hidden = false;
      $('source-title').textContent = file;
      $('script-source').hidden = false;
      $('script-source').textContent = x.ok ? x.b.source : (x.b.error || '');
    });
  }

  // Reload: the new generation's number, or the refused reload's errors
  // (file:line: message) with the old generation still serving.
  function reloadScripts() {
    var list = $('reload-errors');
    list.replaceChildren();
    api('POST', tenantPath('/reload')).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { status: r.status, b: b }; });
    }).then(function (x) {
      if (x.status === 200) {
        $('action-status').textContent = fmt('reloaded', x.b.generation);
      } else {
        $('action-status').textContent = t('reloadRefused');
        (x.b.errors || [{ message: x.b.error || String(x.status) }]).forEach(function (e) {
          var li = document.createElement('li');
          li.textContent = errorLine(e);
          list.appendChild(li);
        });
      }
      loadScripts();
    });
  }


  // ---- administration (tenant admins) ------------------------------------

  var editingAgent = null;  // the agent the form edits (null: a new one)
  var editingQueue = null;  // the queue the form edits (null: a new one)

  function list(text) {
    return text.split(',').map(function (x) { return x.trim(); }).filter(function (x) { return x; });
  }

  // An admin change: the server's answer, or its error, in the status line;
  // the lists are read again either way.
  function adminAct(method, path, body) {
    var status = $('admin-status');
    status.textContent = '';
    return api(method, path, body).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        status.textContent = r.ok ? t('saved') : (b.error || String(r.status));
        loadAdmin();
        return r.ok;
      });
    });
  }

  function roleName(role) {
    var key = { agent: 'roleAgent', supervisor: 'roleSupervisor', admin: 'roleAdmin' }[role];
    return key ? t(key) : role;
  }

  function showAgentForm(a) {
    editingAgent = a ? a.id : null;
    $('agent-form').hidden = false;
    $('agent-id').value = a ? a.id : '';
    $('agent-id').disabled = !!a;
    $('agent-name').value = a ? a.name : '';
    $('agent-capacity').value = String(a ? a.capacity : 1);
    $('agent-queues').value = a ? a.queues.join(', ') : '';
    $('agent-skills').value = a ? a.skills.join(', ') : '';
    $('agent-role').value = a ? a.role : 'agent';
    $('agent-password').value = '';
    $('agent-password').required = !a;
  }

  function showQueueForm(q) {
    editingQueue = q ? q.id : null;
    $('queue-form').hidden = false;
    $('queue-id').value = q ? q.id : '';
    $('queue-id').disabled = !!q;
    $('queue-name').value = q ? q.name : '';
    $('queue-rona').value = String(q ? Math.round(q.rona_timeout_ms / 1000) : 30);
  }

  function hideAdminForms() {
    $('agent-form').hidden = true;
    $('queue-form').hidden = true;
  }

  // Agents, queues and idle reasons; shown only when the server lets this
  // session administer the tenant.
  function loadAdmin() {
    api('GET', tenantPath('/agents')).then(function (r) {
      if (r.status !== 200) { $('admin-section').hidden = true; return null; }
      return r.json();
    }).then(function (agents) {
      if (!agents) return;
      $('admin-section').hidden = false;
      fill('admin-agents', agents.map(function (a) {
        var edit = button('edit', 'btn-quiet', function () { showAgentForm(a); });
        var toggle = a.enabled
          ? button('disable', 'btn-danger', function () { adminAct('PUT', tenantPath('/agents/' + encodeURIComponent(a.id)), { enabled: false }); })
          : button('enable', 'btn-quiet', function () { adminAct('PUT', tenantPath('/agents/' + encodeURIComponent(a.id)), { enabled: true }); });
        return [a.id, a.name, a.capacity, a.queues.join(', '), a.skills.join(', '), roleName(a.role), t(a.enabled ? 'yes' : 'no'), [edit, toggle]];
      }), agents.map(function (a) { return a.id; }));
      return api('GET', tenantPath('/queues')).then(function (r) { return r.json(); }).then(function (queues) {
        fill('admin-queues', queues.map(function (q) {
          return [q.id, q.name, Math.round(q.rona_timeout_ms / 1000), [button('edit', 'btn-quiet', function () { showQueueForm(q); })]];
        }), queues.map(function (q) { return q.id; }));
        return api('GET', tenantPath('/idle-reasons')).then(function (r) { return r.json(); });
      }).then(function (b) {
        if (document.activeElement !== $('idle-reasons')) $('idle-reasons').value = (b.reasons || []).join('\n');
        return api('GET', tenantPath('/settings')).then(function (r) { return r.json(); });
      }).then(function (s) {
        $('masking-on').checked = !!s.mask;
      });
    });
  }

  function saveAgent(e) {
    e.preventDefault();
    var body = {
      name: $('agent-name').value, capacity: Number($('agent-capacity').value),
      queues: list($('agent-queues').value), skills: list($('agent-skills').value), role: $('agent-role').value
    };
    if ($('agent-password').value) body.password = $('agent-password').value;
    var done = editingAgent === null
      ? adminAct('POST', tenantPath('/agents'), Object.assign({ id: $('agent-id').value }, body))
      : adminAct('PUT', tenantPath('/agents/' + encodeURIComponent(editingAgent)), body);
    done.then(function (ok) { if (ok) hideAdminForms(); });
  }

  function saveQueue(e) {
    e.preventDefault();
    var body = { name: $('queue-name').value, rona_timeout_ms: Number($('queue-rona').value) * 1000 };
    var done = editingQueue === null
      ? adminAct('POST', tenantPath('/queues'), Object.assign({ id: $('queue-id').value }, body))
      : adminAct('PUT', tenantPath('/queues/' + encodeURIComponent(editingQueue)), body);
    done.then(function (ok) { if (ok) hideAdminForms(); });
  }

  // The masking switch: asked again before it changes (the server records
  // who changed it).
  function saveMasking(e) {
    e.preventDefault();
    var on = $('masking-on').checked;
    if (!window.confirm(t(on ? 'confirmMaskOn' : 'confirmMaskOff'))) {
      $('masking-on').checked = !on;
      return;
    }
    adminAct('PUT', tenantPath('/settings'), { mask: on });
  }

  function saveIdleReasons(e) {
    e.preventDefault();
    var reasons = $('idle-reasons').value.split('\n').map(function (x) { return x.trim(); }).filter(function (x) { return x; });
    adminAct('PUT', tenantPath('/idle-reasons'), { reasons: reasons });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('lang').value = I18N.lang();
    $('lang').addEventListener('change', function () { I18N.setLang($('lang').value); render(); });
    I18N.apply(document);
    if (!session || !session.token) { fail('noSession'); return; }
    api('GET', '/api/supervisor/overview').then(function (r) {
      if (r.status === 403) { fail('forbidden'); return; }
      if (r.status !== 200) { fail('noSession'); return; }
      connect();
      loadReports();
      loadScripts();
      loadAdmin();
      setInterval(render, 1000);
    });
    $('report-form').addEventListener('submit', function (e) { e.preventDefault(); loadReports(); });
    $('csv-queues').addEventListener('click', function () { download('queues'); });
    $('csv-agents').addEventListener('click', function () { download('agents'); });
    $('move-form').addEventListener('submit', function (e) {
      e.preventDefault();
      if (target === null) return;
      act('POST', '/api/supervisor/conversations/' + target + '/move', { queue: $('move-queue').value })
        .then(function (ok) { if (ok) hideForms(); });
    });
    $('close-form').addEventListener('submit', function (e) {
      e.preventDefault();
      if (target === null) return;
      act('POST', '/api/supervisor/conversations/' + target + '/close', { reason: $('close-reason').value })
        .then(function (ok) { if (ok) hideForms(); });
    });
    document.querySelectorAll('.action-cancel').forEach(function (b) { b.addEventListener('click', hideForms); });
    $('monitor-stop').addEventListener('click', stopMonitor);
    $('scripts-reload').addEventListener('click', reloadScripts);
    $('agent-new').addEventListener('click', function () { showAgentForm(null); });
    $('queue-new').addEventListener('click', function () { showQueueForm(null); });
    $('agent-form').addEventListener('submit', saveAgent);
    $('queue-form').addEventListener('submit', saveQueue);
    $('idle-form').addEventListener('submit', saveIdleReasons);
    $('masking-form').addEventListener('submit', saveMasking);
    document.querySelectorAll('.admin-cancel').forEach(function (b) { b.addEventListener('click', hideAdminForms); });
  });
})();
